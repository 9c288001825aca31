import Foundation
import Glibc
import CMPI
import DistilleryTensor

/// Why a data-parallel run cannot start or go on.
public enum ClusterError: Error, CustomStringConvertible, Equatable {
    /// Launched by mpirun on several processes, but MPI cannot be used here: going on would
    /// train N independent copies into one output folder.
    case mpiUnavailable(ranks: Int, reason: String)
    case mpiCall(String)
    case recipeMismatch(ranks: [Int])
    case dataMismatch(ranks: [Int], what: String)
    case unsupported(String)

    public var description: String {
        switch self {
        case let .mpiUnavailable(n, reason):
            return "started by mpirun as one of \(n) processes, but MPI is unavailable: \(reason). Install openmpi-bin (libmpi.so.40) on every host, or run without mpirun"
        case let .mpiCall(what): return "MPI: \(what) failed"
        case let .recipeMismatch(ranks):
            return "the recipe differs between ranks: rank\(ranks.count == 1 ? "" : "s") \(ranks.map(String.init).joined(separator: ", ")) read a recipe other than rank 0's; give every rank the same recipe file contents"
        case let .dataMismatch(ranks, what):
            return "rank\(ranks.count == 1 ? "" : "s") \(ranks.map(String.init).joined(separator: ", ")) disagree\(ranks.count == 1 ? "s" : "") with rank 0 on \(what); every host needs the same teacher and the same training text"
        case let .unsupported(what): return "\(what) cannot run over MPI yet: run it as one process (without mpirun)"
        }
    }
}

/// A failure on one rank, known to every rank: each rank throws it at the same point, so the
/// job ends everywhere with one message (printed by rank 0) and no rank waits for another.
public struct RankFailure: Error, CustomStringConvertible {
    /// nil: not one rank's doing (the gradient sums every rank holds are not finite).
    public let rank: Int?
    public let ranks: Int
    public let host: String
    /// What the job was doing ("loading the teacher and the data", "step 5").
    public let stage: String
    /// The failing rank's own message.
    public let message: String
    /// The step of the last saved state, when one exists.
    public var lastCheckpoint: Int?

    public var description: String {
        var s = rank.map { "rank \($0) of \(ranks) (\(host)) failed while \(stage): \(message)" } ?? "all \(ranks) ranks stopped at \(stage): \(message)"
        if let c = lastCheckpoint, !message.contains("last checkpoint") { s += ". The last checkpoint (step \(c)) is intact" }
        return s
    }
}

/// The processes of an mpirun job (MPI_COMM_WORLD), when Distillery was started by one.
///
/// MPI calls are serialised: between steps the calling thread makes them; during a step's
/// backward pass only the gradient reducer's thread does (see `GradientReducer`). Every wait
/// sleeps between tests instead of spinning, so a rank waiting for rank 0 (evaluating,
/// writing a checkpoint) leaves the cores to it.
public final class Cluster: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Processes of this job on this host, and this one's index among them.
    public let localRank: Int
    public let localSize: Int
    public let host: String
    /// "Open MPI v4.1.4, 2 processes".
    public let library: String

    nonisolated(unsafe) public private(set) static var shared: Cluster?

    /// Starts MPI when the process was launched by Open MPI's mpirun (OMPI_COMM_WORLD_SIZE in
    /// the environment) and returns the job, nil otherwise. Each rank then uses its share of
    /// the host's cores for its threads unless DISTILL_THREADS says otherwise.
    public static func startIfLaunched() throws -> Cluster? {
        if let shared { return shared }
        let launched = Int(distill_mpi_launched_size())
        guard launched > 0 else { return nil }
        guard distill_mpi_init() != 0 else {
            throw ClusterError.mpiUnavailable(ranks: launched, reason: String(cString: distill_mpi_status()))
        }
        let env = ProcessInfo.processInfo.environment
        let localSize = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
        let c = Cluster(rank: Int(distill_mpi_rank()), size: Int(distill_mpi_size()),
                        localRank: env["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap(Int.init) ?? 0, localSize: localSize,
                        host: ProcessInfo.processInfo.hostName, library: String(cString: distill_mpi_status()))
        if env["DISTILL_THREADS"] == nil {
            Parallel.setThreads(max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, localSize)))
        }
        shared = c
        return c
    }

    init(rank: Int, size: Int, localRank: Int, localSize: Int, host: String, library: String) {
        self.rank = rank; self.size = size; self.localRank = localRank; self.localSize = localSize
        self.host = host; self.library = library
    }

    public var isRoot: Bool { rank == 0 }

    // MARK: collectives (blocking for the caller, sleeping while they wait)

    func wait(_ request: inout distill_mpi_request?, _ what: String) throws {
        if distill_mpi_wait(&request) != 0 { throw ClusterError.mpiCall(what) }
    }

    /// Sums `values` over all ranks, in place.
    public func sum(_ values: inout [Double]) throws {
        guard !values.isEmpty else { return }
        var r: distill_mpi_request?
        try values.withUnsafeMutableBufferPointer { p in
            if distill_mpi_iallreduce_f64(p.baseAddress, p.baseAddress, p.count, &r) != 0 { throw ClusterError.mpiCall("allreduce") }
            try wait(&r, "allreduce")
        }
    }

    /// Rank `root`'s floats to every rank, in pieces MPI's int counts can address.
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) throws {
        var done = 0
        while done < count {
            let n = min(count - done, 1 << 28)
            var r: distill_mpi_request?
            if distill_mpi_ibcast_f32(buffer + done, n, Int32(root), &r) != 0 { throw ClusterError.mpiCall("broadcast") }
            try wait(&r, "broadcast")
            done += n
        }
    }

    public func broadcast(_ values: inout [Double], root: Int = 0) throws {
        var r: distill_mpi_request?
        try values.withUnsafeMutableBufferPointer { p in
            if distill_mpi_ibcast_f64(p.baseAddress, p.count, Int32(root), &r) != 0 { throw ClusterError.mpiCall("broadcast") }
            try wait(&r, "broadcast")
        }
    }

    /// Rank `root`'s text to every rank.
    public func broadcast(_ text: String, root: Int) throws -> String {
        var length = [Double(text.utf8.count)]
        try broadcast(&length, root: root)
        var bytes = rank == root ? Array(text.utf8) : [UInt8](repeating: 0, count: Int(length[0]))
        guard !bytes.isEmpty else { return "" }
        var r: distill_mpi_request?
        try bytes.withUnsafeMutableBytes { p in
            if distill_mpi_ibcast_bytes(p.baseAddress, p.count, Int32(root), &r) != 0 { throw ClusterError.mpiCall("broadcast") }
            try wait(&r, "broadcast")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Each rank's `values` (the same count on every rank), gathered on every rank: [rank][i].
    public func gather(_ values: [Double]) throws -> [[Double]] {
        var all = [Double](repeating: 0, count: values.count * size)
        for (i, v) in values.enumerated() { all[rank * values.count + i] = v }
        try sum(&all)
        return (0..<size).map { Array(all[($0 * values.count)..<(($0 + 1) * values.count)]) }
    }

    public func barrier() throws {
        var r: distill_mpi_request?
        if distill_mpi_ibarrier(&r) != 0 { throw ClusterError.mpiCall("barrier") }
        try wait(&r, "barrier")
    }

    /// Runs `body` on every rank and then agrees on the outcome: if any rank failed, every rank
    /// throws the same `RankFailure` (carrying the lowest failing rank's message), so no rank
    /// goes on to wait for one that has stopped.
    public func together<T>(_ stage: String, lastCheckpoint: Int? = nil, _ body: () throws -> T) throws -> T {
        let result = Result { try body() }
        try agree(stage, failure: result.failureMessage, lastCheckpoint: lastCheckpoint)
        return try result.get()
    }

    /// Every rank says whether it failed (its message) at `stage`; throws a `RankFailure` on
    /// every rank when one did.
    public func agree(_ stage: String, failure: String?, lastCheckpoint: Int? = nil) throws {
        let flags = try gather([failure == nil ? 0 : 1])
        guard let first = flags.firstIndex(where: { $0[0] != 0 }) else { return }
        let message = try broadcast(failure ?? "", root: first)
        let host = try broadcast(self.host, root: first)
        throw RankFailure(rank: first, ranks: size, host: host, stage: stage, message: message, lastCheckpoint: lastCheckpoint)
    }

    /// What rank 0 says if mpirun ends it (another rank died): set each step, it names the step.
    public func setNotice(_ text: String) {
        if isRoot { distill_mpi_set_notice("distill: rank 0 of \(size): " + text) }
    }

    /// Runs a command's body as one rank of the job and exits: 0 after it returns (every rank
    /// waits for the others, then MPI is shut down); 1 after an error. Errors every rank knows
    /// of (a `RankFailure`, a `ClusterError`) are printed once, by rank 0, and the ranks exit
    /// together; any other error is this rank's alone, so it is printed with the rank and the
    /// job aborted (MPI_Abort), since the others may be waiting for this one.
    public func runCommand(_ body: () throws -> Int32) -> Never {
        if isRoot { distill_mpi_install_notice() }
        let code: Int32
        do {
            code = try body()
        } catch let e as RankFailure {
            if isRoot { FileHandle.standardError.write(Data(("distill: " + e.description + "\n").utf8)) }
            finish()
            exit(1)
        } catch let e as ClusterError {
            if isRoot { FileHandle.standardError.write(Data(("distill: " + e.description + "\n").utf8)) }
            finish()
            exit(1)
        } catch {
            abort("\(error)")
        }
        finish()
        exit(code)
    }

    /// Waits for every rank, then shuts MPI down (every rank must call it once at the end).
    public func finish() {
        try? barrier()
        distill_mpi_finalize()
    }

    /// Ends every process of the job at once: for errors that only this rank knows of, where
    /// waiting for the others to agree could hang.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data(("distill: rank \(rank) of \(size) (\(host)): " + message + "\n").utf8))
        distill_mpi_abort(code)
        exit(code)
    }
}

extension Result where Failure == Error {
    var failureMessage: String? {
        if case .failure(let e) = self { return "\(e)" }
        return nil
    }
}
