// Builds a small encoder from a configuration, runs it in fp32 and bf16, and prints what a
// library user would look at: the parameter count and a hidden state.
import DistilleryTensor
import DistilleryModels

let config = EncoderConfig(family: .bert, vocabSize: 1000, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128,
                           maxPositions: 32, hasMLMHead: true)
let model = EncoderModel(config: config)
model.initializeRandomly(seed: 1)
let batch = TokenBatch.random(B: 2, S: 16, config: config)
let hidden = FloatBuffer(count: 2 * 16 * 64)
try model.encode(batch, hidden: hidden.base)
let fp32 = hidden.toArray()
model.convertMatricesToBF16()
try model.encode(batch, hidden: hidden.base)
let bf16 = hidden.toArray()
let worst = zip(fp32, bf16).map { abs($0 - $1) }.max() ?? 0
print("parameters \(grouped(ParameterBreakdown(name: "consumer", layout: model.layout).total)); hidden[0..<4] \(fp32.prefix(4)); bf16 max difference \(worst)")
guard fp32.allSatisfy(\.isFinite), worst < 0.1 else { fatalError("unexpected outputs") }
