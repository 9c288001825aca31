import Foundation
import DistilleryTensor

/// L2-regularised logistic regression on standardised features, fitted to convergence by
/// L-BFGS in Float64: the linear probe. It solves the problem scikit-learn's
/// `StandardScaler` + `LogisticRegression(C)` (lbfgs) solves, so the numbers compare:
///
///   minimise  mean_i −log p(y_i | x̃_i) + ‖W‖² / (2·C·n),   x̃ = (x − mean) / std (train split)
///
/// with unpenalised intercepts; a constant feature, or one whose spread is float noise (below
/// 1e-6 of the widest feature's), gets scale 1. Three or more classes use a
/// softmax over K weight rows. scikit-learn fits two classes as one binomial vector w; the
/// two-row softmax here gives the same probabilities when its penalty is doubled, since the
/// optimum splits w = w₁ − w₀ evenly (‖w₀‖² + ‖w₁‖² = ‖w‖²/2).
public struct LogisticRegression: Sendable, Codable, Equatable {
    /// The labels, ascending; row k of `weights` belongs to `classes[k]`.
    public let classes: [Int32]
    public let dimensions: Int
    /// Standardisation learnt from the training features.
    public let mean: [Double]
    public let scale: [Double]
    /// [K×d] over standardised features, and [K].
    public let weights: [Double]
    public let bias: [Double]

    public struct Settings: Sendable, Equatable, Codable {
        /// Inverse regularisation strength (scikit-learn's C; its default is 1).
        public var c = 1.0
        public var maxIterations = 1000
        /// Converged when every partial derivative of the objective is below this.
        public var tolerance = 1e-8
        /// Correction pairs L-BFGS keeps.
        public var memory = 10
        public init() {}
    }

    /// How the fit ended.
    public struct Fit: Sendable, Equatable, Codable {
        public var iterations: Int
        public var converged: Bool
        public var objective: Double
        public var gradientMaxAbs: Double
    }

    /// Fits on `features` [n×d] (row-major) with `labels` [n]. Deterministic: the same input gives
    /// the same bits whatever the thread count.
    public static func fit(features: [Double], labels: [Int32], dimensions d: Int,
                           settings: Settings = Settings()) throws -> (model: LogisticRegression, fit: Fit) {
        let n = labels.count
        guard n > 0 else { throw ProbeError.noExamples(what: "the training features") }
        guard d > 0, features.count == n * d else {
            throw ProbeError.shape(reason: "\(features.count) feature values for \(n) examples of \(d) dimensions")
        }
        guard settings.c > 0, settings.c.isFinite else { throw ProbeError.badSetting(name: "C", reason: "must be a positive number, got \(settings.c)") }
        if let i = features.firstIndex(where: { !$0.isFinite }) { throw ProbeError.nonFiniteFeature(row: i / d) }
        let classes = Array(Set(labels)).sorted()
        guard classes.count >= 2 else { throw ProbeError.oneClass(label: classes[0], data: "the training features") }
        let K = classes.count
        // The fit holds logits [n×K] and about 2·memory + 4 weight-sized vectors [K×(d+1)], in
        // Doubles: checked before allocating, as a file of 100,000 one-off labels asks for 80 GB.
        let vectors = 2 * min(max(1, settings.memory), 1_000) + 4
        try MemoryBudget.check(MemoryBudget.product(8, K, n + vectors * (d + 1)),
                               for: "a probe over \(K) classes (\(n) training examples × \(d) features)")
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, Int32($0)) })
        let y = labels.map { index[$0]! }

        // Standardise (population std, as StandardScaler).
        var mean = [Double](repeating: 0, count: d), scale = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += features[i * d + j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        for i in 0..<n { for j in 0..<d { let t = features[i * d + j] - mean[j]; scale[j] += t * t } }
        for j in 0..<d { scale[j] = (scale[j] / Double(n)).squareRoot() }
        // A feature whose spread is below a millionth of the widest one's is float rounding
        // noise, not signal (all-MiniLM-L6-v2 has dimensions at 1e-32 and 1e-9 beside ones at
        // 0.2): it keeps scale 1 and so stays ≈ 0, where StandardScaler would blow the noise up
        // to unit size and let it sway the fit. Exactly constant features get scale 1 in both.
        let widest = scale.max() ?? 0
        for j in 0..<d where scale[j] <= 1e-6 * widest || scale[j] == 0 { scale[j] = 1 }
        let x = standardise(features, rows: n, dimensions: d, mean: mean, scale: scale)
        let lambda = (K == 2 ? 2 : 1) / settings.c
        var problem = SoftmaxProblem(x: x, y: y, n: n, d: d, K: K, lambda: lambda)
        let (theta, fit) = minimiseLBFGS(&problem, settings: settings)
        let model = LogisticRegression(classes: classes, dimensions: d, mean: mean, scale: scale,
                                       weights: Array(theta[0..<(K * d)]), bias: Array(theta[(K * d)...]))
        return (model, fit)
    }

    /// Class probabilities [n×K] for `features` [n×d].
    public func probabilities(_ features: [Double]) throws -> [Double] {
        let d = dimensions, K = classes.count
        guard features.count % d == 0 else { throw ProbeError.shape(reason: "\(features.count) feature values are not rows of \(d)") }
        let n = features.count / d
        if let i = features.firstIndex(where: { !$0.isFinite }) { throw ProbeError.nonFiniteFeature(row: i / d) }
        try MemoryBudget.check(MemoryBudget.product(8, n, K + d), for: "class probabilities of \(n) examples over \(K) classes")
        let x = Self.standardise(features, rows: n, dimensions: d, mean: mean, scale: scale)
        var z = [Double](repeating: 0, count: n * K)
        x.withUnsafeBufferPointer { xp in
            weights.withUnsafeBufferPointer { wp in
                z.withUnsafeMutableBufferPointer { zp in
                    dgemm(.no, .yes, m: n, n: K, k: d, xp.baseAddress!, lda: d, wp.baseAddress!, ldb: d, zp.baseAddress!, ldc: K)
                    for i in 0..<n {
                        let row = zp.baseAddress! + i * K
                        var m = -Double.infinity
                        for k in 0..<K { row[k] += bias[k]; m = max(m, row[k]) }
                        var sum = 0.0
                        for k in 0..<K { row[k] = exp(row[k] - m); sum += row[k] }
                        for k in 0..<K { row[k] /= sum }
                    }
                }
            }
        }
        return z
    }

    /// The most probable class of each row (the first on a tie, as numpy's argmax).
    public func predict(_ features: [Double]) throws -> [Int32] {
        let p = try probabilities(features), K = classes.count
        return (0..<(p.count / K)).map { i in
            var best = 0
            for k in 1..<K where p[i * K + k] > p[i * K + best] { best = k }
            return classes[best]
        }
    }

    static func standardise(_ features: [Double], rows n: Int, dimensions d: Int, mean: [Double], scale: [Double]) -> [Double] {
        var x = features
        x.withUnsafeMutableBufferPointer { p in
            for i in 0..<n { for j in 0..<d { p[i * d + j] = (p[i * d + j] - mean[j]) / scale[j] } }
        }
        return x
    }
}

/// k-fold cross-validation of the probe on one labelled split: every example is predicted once,
/// by a regression (standardisation included) fitted on the other folds. The folds are
/// contiguous blocks in file order, as scikit-learn's `KFold(k)` cuts them (the first n mod k
/// folds one longer; no shuffling), so examples that sit together in the file (one film's
/// reviews) mostly share a fold; a file sorted by label would make one-class folds, and a fold
/// whose other rows hold a single class is refused.
public struct CrossValidation: Codable, Sendable, Equatable {
    public var folds: Int
    public var examples: Int
    /// Accuracy on each held-out fold, in order.
    public var foldAccuracies: [Double]
    /// Over all n held-out predictions together (scikit-learn's
    /// `cross_val_predict(…, cv=KFold(k))`, then the score).
    public var accuracy: Double
    public var macroF1: Double
    /// √(a(1 − a)/n): the binomial standard error, as if the n predictions were independent.
    /// They are not quite (the fits share most of their rows, neighbouring examples are alike),
    /// so read it as a lower bound; two models probed on the same folds differ more surely than
    /// their two errors suggest, since they face the same examples.
    public var standardError: Double
    /// Whether every fold's fit converged.
    public var converged: Bool
    /// Time for the k fits and predictions.
    public var seconds: Double
    /// Folds (1-based) whose held-out rows all carry one label: a sign of a file sorted by
    /// label, where each fit is tested on a class it saw least of.
    public var oneClassFolds: [Int] = []
    /// Whether each example's held-out prediction was right [n], for paired comparisons of two
    /// models on the same folds (kept out of JSON: one value per example).
    public var correct: [Bool] = []

    enum CodingKeys: String, CodingKey {
        case folds, examples, foldAccuracies, accuracy, macroF1, standardError, converged, seconds, oneClassFolds
    }

    /// This accuracy minus `other`'s, example by example over the same examples and folds: the
    /// mean of dᵢ = [self right] − [other right] ∈ {−1, 0, 1} and its standard error
    /// sd(d)/√n (sample deviation). Only the examples one model gets right and the other wrong
    /// move it, so it is much tighter than the two accuracies' own errors. Nil when the two
    /// were not cross-validated the same way.
    public func difference(from other: CrossValidation) -> PairedDifference? {
        let n = correct.count
        guard n >= 2, other.correct.count == n, folds == other.folds, examples == other.examples else { return nil }
        var onlySelf = 0, onlyOther = 0
        for i in 0..<n where correct[i] != other.correct[i] {
            if correct[i] { onlySelf += 1 } else { onlyOther += 1 }
        }
        let mean = Double(onlySelf - onlyOther) / Double(n)
        let variance = max(0, (Double(onlySelf + onlyOther) - Double(n) * mean * mean) / Double(n - 1))
        return PairedDifference(difference: mean, standardError: (variance / Double(n)).squareRoot(),
                                onlyFirstCorrect: onlySelf, onlySecondCorrect: onlyOther, examples: n)
    }
}

/// One model's cross-validated probe accuracy minus another's on the same examples and folds.
public struct PairedDifference: Codable, Sendable, Equatable {
    public var difference: Double
    public var standardError: Double
    /// Examples only the first model gets right, and only the second.
    public var onlyFirstCorrect: Int
    public var onlySecondCorrect: Int
    public var examples: Int
}

extension LogisticRegression {
    /// The rows of fold `k` (0 ≤ k < folds ≤ n) over `n` examples: scikit-learn's KFold without shuffling.
    public static func foldRange(_ k: Int, of folds: Int, examples n: Int) -> Range<Int> {
        precondition(folds > 0 && (0..<folds).contains(k) && n >= 0)
        let small = n / folds, longer = n % folds
        let start = k * small + min(k, longer)
        return start..<(start + small + (k < longer ? 1 : 0))
    }

    /// Refuses a fold count the labels cannot support: folds outside 2…n, or a fold whose
    /// other rows hold one class. Cheap (labels only), so callers run it before any embedding.
    public static func checkFolds(_ folds: Int, labels: [Int32], data: String) throws {
        let n = labels.count
        guard folds >= 2, folds <= n else {
            throw ProbeError.badSetting(name: "folds", reason: "must be 2…\(n) (the examples in \(data)), got \(folds)")
        }
        for k in 0..<folds {
            let held = foldRange(k, of: folds, examples: n)
            var first: Int32?, mixed = false
            for i in 0..<n where !held.contains(i) {
                if let f = first { if labels[i] != f { mixed = true; break } } else { first = labels[i] }
            }
            if !mixed {
                throw ProbeError.oneClass(label: first ?? labels[0], data: "the training rows of cross-validation fold \(k + 1) of \(folds) in \(data)")
            }
        }
    }

    /// Cross-validates on `features` [n×d] with `labels` [n] over `folds` contiguous folds.
    public static func crossValidate(features: [Double], labels: [Int32], dimensions d: Int, folds: Int,
                                     settings: Settings = Settings(), data: String = "the features") throws -> CrossValidation {
        try crossValidatedPredictions(features: features, labels: labels, dimensions: d, folds: folds, settings: settings, data: data).summary
    }

    /// The same, with each example's held-out prediction [n].
    public static func crossValidatedPredictions(features: [Double], labels: [Int32], dimensions d: Int, folds: Int,
                                                 settings: Settings = Settings(), data: String = "the features")
        throws -> (predicted: [Int32], summary: CrossValidation) {
        let n = labels.count
        let (values, overflow) = n.multipliedReportingOverflow(by: d)
        guard d > 0, !overflow, features.count == values else {
            throw ProbeError.shape(reason: "\(features.count) feature values for \(n) examples of \(d) dimensions")
        }
        try checkFolds(folds, labels: labels, data: data)
        let t0 = Timing.now()
        var predicted = [Int32](repeating: 0, count: n), accuracies: [Double] = [], converged = true, oneClass: [Int] = []
        for k in 0..<folds {
            let held = foldRange(k, of: folds, examples: n)
            if labels[held].allSatisfy({ $0 == labels[held.lowerBound] }) { oneClass.append(k + 1) }
            var restFeatures = [Double](), restLabels = [Int32]()
            restFeatures.reserveCapacity((n - held.count) * d); restLabels.reserveCapacity(n - held.count)
            for i in 0..<n where !held.contains(i) {
                restFeatures += features[(i * d)..<((i + 1) * d)]
                restLabels.append(labels[i])
            }
            let (model, fit) = try LogisticRegression.fit(features: restFeatures, labels: restLabels, dimensions: d, settings: settings)
            converged = converged && fit.converged
            let p = try model.predict(Array(features[(held.lowerBound * d)..<(held.upperBound * d)]))
            for (j, i) in held.enumerated() { predicted[i] = p[j] }
            accuracies.append(ClassificationScores.accuracy(truth: Array(labels[held]), predicted: p))
        }
        let a = ClassificationScores.accuracy(truth: labels, predicted: predicted)
        return (predicted, CrossValidation(folds: folds, examples: n, foldAccuracies: accuracies, accuracy: a,
                                           macroF1: ClassificationScores.macroF1(truth: labels, predicted: predicted),
                                           standardError: (a * (1 - a) / Double(n)).squareRoot(), converged: converged,
                                           seconds: Timing.now() - t0, oneClassFolds: oneClass,
                                           correct: zip(predicted, labels).map { $0 == $1 }))
    }
}

/// Accuracy and macro-F1 as scikit-learn computes them: macro-F1 averages F1 = 2TP/(2TP+FP+FN)
/// over every label that occurs among the truths or the predictions.
public enum ClassificationScores {
    public static func accuracy(truth: [Int32], predicted: [Int32]) -> Double {
        precondition(truth.count == predicted.count)
        guard !truth.isEmpty else { return 0 }
        return Double(zip(truth, predicted).filter { $0 == $1 }.count) / Double(truth.count)
    }

    public static func macroF1(truth: [Int32], predicted: [Int32]) -> Double {
        precondition(truth.count == predicted.count)
        let labels = Set(truth).union(predicted).sorted()
        guard !labels.isEmpty else { return 0 }
        var sum = 0.0
        for c in labels {
            var tp = 0, fp = 0, fn = 0
            for (t, p) in zip(truth, predicted) {
                if p == c && t == c { tp += 1 } else if p == c { fp += 1 } else if t == c { fn += 1 }
            }
            sum += Double(2 * tp) / Double(2 * tp + fp + fn)
        }
        return sum / Double(labels.count)
    }
}

/// The softmax objective and its gradient over θ = [W (K×d) row-major, b (K)], with the buffers
/// it needs allocated once.
struct SoftmaxProblem {
    let x: [Double]
    let y: [Int32]
    let n: Int, d: Int, K: Int
    let lambda: Double
    /// Logits, then residuals p − onehot(y), [n×K].
    var z: [Double]

    init(x: [Double], y: [Int32], n: Int, d: Int, K: Int, lambda: Double) {
        self.x = x; self.y = y; self.n = n; self.d = d; self.K = K; self.lambda = lambda
        z = [Double](repeating: 0, count: n * K)
    }

    var parameterCount: Int { K * d + K }

    /// f(θ), writing ∇f(θ) into `gradient`.
    mutating func evaluate(_ theta: UnsafePointer<Double>, gradient g: UnsafeMutablePointer<Double>) -> Double {
        let n = n, d = d, K = K, lambda = lambda
        var loss = 0.0
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeBufferPointer { yb in
                z.withUnsafeMutableBufferPointer { zb in
                    let xp = xb.baseAddress!, zp = zb.baseAddress!
                    dgemm(.no, .yes, m: n, n: K, k: d, xp, lda: d, theta, ldb: d, zp, ldc: K)
                    let b = theta + K * d
                    for i in 0..<n {
                        let row = zp + i * K, label = Int(yb[i])
                        var m = -Double.infinity
                        for k in 0..<K { row[k] += b[k]; m = max(m, row[k]) }
                        var sum = 0.0
                        for k in 0..<K { sum += exp(row[k] - m) }
                        let lse = m + log(sum)
                        loss += lse - row[label]
                        // The residual, already divided by n for the mean.
                        for k in 0..<K { row[k] = exp(row[k] - lse) / Double(n) }
                        row[label] -= 1 / Double(n)
                    }
                    // ∇W = Rᵀ X + (λ/n) W; ∇b = column sums of R.
                    dgemm(.yes, .no, m: K, n: d, k: n, zp, lda: K, xp, ldb: d, g, ldc: d)
                    let gb = g + K * d
                    for k in 0..<K { gb[k] = 0 }
                    for i in 0..<n { for k in 0..<K { gb[k] += zp[i * K + k] } }
                }
            }
        }
        var penalty = 0.0
        for j in 0..<(K * d) {
            penalty += theta[j] * theta[j]
            g[j] += lambda / Double(n) * theta[j]
        }
        return loss / Double(n) + lambda / (2 * Double(n)) * penalty
    }
}

/// L-BFGS (two-loop recursion) with a backtracking Armijo line search using quadratic
/// interpolation, from θ = 0. Stops when max |∇f| ≤ tolerance, when a step no longer lowers f
/// by more than rounding (64 ε relative, scipy's ftol as scikit-learn sets it), or after
/// `maxIterations`. The objective is smooth and convex, so Armijo steps keep sᵀy > 0.
func minimiseLBFGS(_ problem: inout SoftmaxProblem, settings: LogisticRegression.Settings) -> ([Double], LogisticRegression.Fit) {
    let P = problem.parameterCount, m = max(1, settings.memory)
    // Work space, allocated once: θ, ∇f, the trial point and its gradient, the direction, and
    // the m correction pairs (s, y).
    let work = UnsafeMutableBufferPointer<Double>.allocate(capacity: (5 + 2 * m) * P + 2 * m)
    work.initialize(repeating: 0)
    defer { work.deallocate() }
    let t = work.baseAddress!, g = t + P, xt = g + P, gt = xt + P, q = gt + P
    let s = q + P, yv = s + m * P, rho = yv + m * P, alphas = rho + m
    func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>) -> Double {
        var r = 0.0
        for i in 0..<P { r += a[i] * b[i] }
        return r
    }
    func maxAbs(_ a: UnsafePointer<Double>) -> Double {
        var r = 0.0
        for i in 0..<P { r = max(r, abs(a[i])) }
        return r
    }
    var stored = 0, next = 0
    var f = problem.evaluate(t, gradient: g)
    var fit = LogisticRegression.Fit(iterations: 0, converged: false, objective: f, gradientMaxAbs: maxAbs(g))
    iterating: while fit.gradientMaxAbs > settings.tolerance && fit.iterations < settings.maxIterations {
        fit.iterations += 1
        // Direction −H·g by the two-loop recursion over the stored pairs, newest first.
        for i in 0..<P { q[i] = -g[i] }
        for j in 0..<stored {
            let slot = (next - 1 - j + m) % m
            alphas[slot] = rho[slot] * dot(s + slot * P, q)
            for i in 0..<P { q[i] -= alphas[slot] * yv[slot * P + i] }
        }
        if stored > 0 {
            let last = (next - 1 + m) % m
            let gamma = dot(s + last * P, yv + last * P) / dot(yv + last * P, yv + last * P)
            for i in 0..<P { q[i] *= gamma }
        }
        for j in (0..<stored).reversed() {
            let slot = (next - 1 - j + m) % m
            let beta = rho[slot] * dot(yv + slot * P, q)
            for i in 0..<P { q[i] += (alphas[slot] - beta) * s[slot * P + i] }
        }
        var slope = dot(g, q)
        if !(slope < 0) {
            // Not a descent direction (rounding): forget the history.
            stored = 0
            for i in 0..<P { q[i] = -g[i] }
            slope = dot(g, q)
        }
        // Without a curvature estimate, start at unit length.
        var step = stored == 0 ? min(1, 1 / dot(g, g).squareRoot()) : 1
        for _ in 0..<50 {
            for i in 0..<P { xt[i] = t[i] + step * q[i] }
            let ft = problem.evaluate(xt, gradient: gt)
            if ft.isFinite && ft <= f + 1e-4 * step * slope {
                let slot = next
                for i in 0..<P { s[slot * P + i] = xt[i] - t[i]; yv[slot * P + i] = gt[i] - g[i] }
                let sy = dot(s + slot * P, yv + slot * P)
                if sy > 1e-12 * dot(yv + slot * P, yv + slot * P) {
                    rho[slot] = 1 / sy
                    next = (next + 1) % m
                    stored = min(stored + 1, m)
                }
                let reduction = f - ft
                t.update(from: xt, count: P)
                g.update(from: gt, count: P)
                fit.objective = ft
                fit.gradientMaxAbs = maxAbs(g)
                let previous = f
                f = ft
                if reduction <= 64 * Double.ulpOfOne * max(abs(previous), abs(ft), 1) { fit.converged = true; break iterating }
                continue iterating
            }
            // Minimum of the quadratic through f, the slope and f(step), kept in [0.1, 0.5]·step.
            let curvature = ft.isFinite ? 2 * (ft - f - step * slope) : 0
            let proposal = curvature > 0 ? -slope * step * step / curvature : 0.5 * step
            step = min(max(proposal, 0.1 * step), 0.5 * step)
        }
        // No step lowers f enough: stuck short of the tolerance (reported as not converged).
        break
    }
    if fit.gradientMaxAbs <= settings.tolerance { fit.converged = true }
    return (Array(UnsafeBufferPointer(start: t, count: P)), fit)
}

public enum ProbeError: Error, CustomStringConvertible, Equatable {
    case noExamples(what: String)
    case oneClass(label: Int32, data: String)
    case shape(reason: String)
    case nonFiniteFeature(row: Int)
    case badSetting(name: String, reason: String)

    public var description: String {
        switch self {
        case let .noExamples(w): return "\(w): no examples"
        case let .oneClass(l, d): return "\(d): every example has label \(l); a classifier needs at least two classes"
        case let .shape(r): return "probe features: \(r)"
        case let .nonFiniteFeature(r): return "the embedding of example \(r + 1) holds NaN or infinite values (the model overflows in float?)"
        case let .badSetting(n, r): return "probe \(n): \(r)"
        }
    }
}
