import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file-system failure, naming the file and what the system said.
public struct FileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let operation: String
    public let reason: String
    public init(path: String, operation: String, reason: String) {
        self.path = path; self.operation = operation; self.reason = reason
    }
    init(path: String, operation: String, errno code: Int32) {
        self.init(path: path, operation: operation, reason: String(cString: strerror(code)))
    }
    public var description: String { "\(path): cannot \(operation): \(reason)" }
}

/// A read-only memory mapping of a whole file. Large model files are never copied into memory;
/// pages are read as tensors are touched.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let mapping: UnsafeMutableRawPointer?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw FileError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw FileError(path: path, operation: "stat", errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw FileError(path: path, operation: "read", reason: "it is a directory")
        }
        size = Int(st.st_size)
        if size == 0 {
            mapping = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil { throw FileError(path: path, operation: "map", errno: errno) }
        mapping = p
    }

    deinit { if let mapping { munmap(mapping, size) } }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mapping, count: size) }
}

/// Writes a file so that readers see either the old file or the complete new one: the data
/// goes to a temporary file in the same folder, is flushed to disk, then renamed over the
/// destination (and the folder entry flushed). If the writer is dropped before `commit()`,
/// the temporary file is removed and the destination is untouched.
public final class AtomicFileWriter {
    public let path: String
    public let temporaryPath: String
    private var fd: Int32
    private var committed = false
    public private(set) var bytesWritten = 0

    /// Throws unless `path` can receive a file: it names one (not "", nor a folder path such as
    /// "out/" or "."), its folder exists, and no folder stands at the path. Commands that work
    /// long before writing call it first.
    public static func checkDestination(_ path: String) throws {
        guard namesAnEntry(path), !path.hasSuffix("/") else {
            throw FileError(path: path.isEmpty ? "\"\"" : path, operation: "write", reason: "the path names no file; give one, e.g. out/NAME")
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) || !isDir.boolValue {
            throw FileError(path: path, operation: "write", reason: "folder \(dir) does not exist")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw FileError(path: path, operation: "write", reason: "a folder stands there; give a file name")
        }
    }

    public init(path: String) throws {
        self.path = path
        try Self.checkDestination(path)
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        temporaryPath = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path: temporaryPath, operation: "create", errno: errno) }
    }

    deinit {
        if !committed {
            if fd >= 0 { close(fd) }
            unlink(temporaryPath)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var p = bytes.baseAddress
        var left = bytes.count
        while left > 0, let q = p {
            let n = Glibc.write(fd, q, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path: temporaryPath, operation: "write", errno: errno)
            }
            left -= n
            p = q + n
            bytesWritten += n
        }
    }

    public func write(_ data: [UInt8]) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    /// Overwrites bytes already written (a header completed at the end, say).
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        precondition(offset + bytes.count <= bytesWritten, "write(at:) may only overwrite written bytes")
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path: temporaryPath, operation: "write", errno: errno)
            }
            done += n
        }
    }

    /// Flushes, closes and renames into place.
    public func commit() throws {
        if fsync(fd) != 0 { throw FileError(path: temporaryPath, operation: "flush", errno: errno) }
        if close(fd) != 0 { fd = -1; throw FileError(path: temporaryPath, operation: "close", errno: errno) }
        fd = -1
        if rename(temporaryPath, path) != 0 {
            throw FileError(path: path, operation: "rename \(temporaryPath) to", errno: errno)
        }
        committed = true
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        let w = try AtomicFileWriter(path: path)
        try w.write(data)
        try w.commit()
    }
}

/// Whether `path` names a file or folder of its own: not "", ".", ".." or "/" (nor a path
/// ending in one), which resolve to a folder that already holds other things.
func namesAnEntry(_ path: String) -> Bool {
    guard let last = path.split(separator: "/").last else { return false }
    return last != "." && last != ".."
}

/// Reads a whole small file (configs, vocabularies, recipes) with a clear error.
public func readFile(_ path: String) throws -> Data {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw FileError(path: path, operation: "read", reason: "no such file")
    }
    if isDir.boolValue { throw FileError(path: path, operation: "read", reason: "it is a directory") }
    do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw FileError(path: path, operation: "read", reason: error.localizedDescription)
    }
}

extension FileManager {
    /// Creates a folder (and its parents), with an error naming the folder.
    public func createFolder(_ path: String) throws {
        do { try createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw FileError(path: path, operation: "create the folder", reason: fileErrorReason(error, path: path))
        }
    }

    /// Throws unless a folder written here may take the place of `path`: the path must name a
    /// folder of its own (not "", ".", ".." or "/"), and what is there already must be nothing,
    /// or a folder holding only files named in `names` (what an earlier write of the same kind
    /// left) and hidden temporaries. A file, or a folder with anything else in it, would be
    /// deleted by the replacement, so it is refused by name before any work starts.
    public func checkReplaceableFolder(_ path: String, mayHold names: Set<String>) throws {
        guard namesAnEntry(path) else {
            throw FileError(path: path.isEmpty ? "\"\"" : path, operation: "write a folder at",
                            reason: "the path names no folder of its own; give one, e.g. runs/NAME")
        }
        var isFolder: ObjCBool = false
        guard fileExists(atPath: path, isDirectory: &isFolder) else { return }
        guard isFolder.boolValue else {
            throw FileError(path: path, operation: "replace", reason: "it is a file, and the folder written here would take its place; give a new folder, or remove the file first")
        }
        let foreign: [String]
        do {
            foreign = try contentsOfDirectory(atPath: path).filter { !names.contains($0) && !($0.hasPrefix(".") && $0.contains(".tmp-")) }.sorted()
        } catch {
            throw FileError(path: path, operation: "list", reason: fileErrorReason(error, path: path))
        }
        if let first = foreign.first {
            let more = foreign.count > 1 ? " and \(foreign.count - 1) more" : ""
            throw FileError(path: path, operation: "replace",
                            reason: "it holds \(first)\(more), which the folder written here would not, and replacing it would delete them; give a new folder, or move them away first")
        }
    }

    /// Replaces the folder `path` by `staging` (a complete folder beside it) so that readers see
    /// the old folder or the new one, never half of one: the old one is renamed away, the new
    /// one renamed into place, then the old one removed. What is at `path` must pass
    /// `checkReplaceableFolder` (callers check it before their work too).
    public func replaceFolder(_ path: String, with staging: String, mayHold names: Set<String>) throws {
        do { try checkReplaceableFolder(path, mayHold: names) } catch {
            try? removeItem(atPath: staging)
            throw error
        }
        let old = path + ".old-\(getpid())"
        if fileExists(atPath: path) {
            if rename(path, old) != 0 { throw FileError(path: path, operation: "move aside", errno: errno) }
        }
        if rename(staging, path) != 0 {
            let e = errno
            _ = rename(old, path)
            throw FileError(path: path, operation: "rename \(staging) to", errno: e)
        }
        try? removeItem(atPath: old)
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dfd = open(parent, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Removes what interrupted atomic writes left in `folder`: hidden ".NAME.tmp-PID-…" files
    /// and ".NAME.tmp-PID" / "NAME.old-PID" folders of processes that no longer run.
    @discardableResult
    public func removeStaleTemporaries(in folder: String) -> [String] {
        guard let names = try? contentsOfDirectory(atPath: folder) else { return [] }
        var removed: [String] = []
        for name in names {
            let pid: Int32?
            if let r = name.range(of: ".tmp-"), name.hasPrefix(".") {
                pid = Int32(name[r.upperBound...].prefix { $0.isNumber })
            } else if let r = name.range(of: ".old-") {
                pid = Int32(name[r.upperBound...].prefix { $0.isNumber })
            } else { continue }
            guard let pid, pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            if (try? removeItem(atPath: folder + "/" + name)) != nil { removed.append(name) }
        }
        return removed
    }
}

/// Why a Foundation file operation failed, in words a user can act on (Foundation's own text
/// is often "The operation could not be completed (NSCocoaErrorDomain error 512)").
public func fileErrorReason(_ error: Error, path: String) -> String {
    let e = error as NSError
    if e.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(e.code))) }
    if let u = e.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(u.code))) }
    if let r = e.localizedFailureReason { return r }
    // A file where a folder is needed is the usual cause of "unknown" write errors.
    var prefix = URL(fileURLWithPath: path).standardized
    while prefix.path != "/" {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: prefix.path, isDirectory: &isDir) {
            if !isDir.boolValue && prefix.path != path { return "\(prefix.path) is a file, not a folder" }
            break
        }
        prefix.deleteLastPathComponent()
    }
    switch CocoaError.Code(rawValue: e.code) {
    case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
    case .fileWriteNoPermission, .fileReadNoPermission: return "permission denied"
    case .fileWriteOutOfSpace: return "no space left on the device"
    case .fileWriteFileExists: return "a file of that name is in the way"
    default: return "the file system refused it (error \(e.code))"
    }
}
