"""What `distill bench forward` and `distill bench forward --int8` compare against, on the same
machine: all-MiniLM-L6-v2 in PyTorch eager (fp32 and dynamic int8) and ONNX Runtime (optimized
fp32 graph and dynamic int8 with per-channel weights), ms per batch at 8 × 128 and 1 × 128 on
random tokens (median of 20), and each int8 model's mean cosine to the fp32 mean-pooled sentence
embeddings over the first 96 lines of recipes/data/demo-heldout.txt (what
Tests/DistilleryTests/QuantizationTests.swift measures for Distillery). For comparison only:

    pip install torch transformers onnx onnxruntime
    python3 Tests/Benchmarks/forward_bench.py .models/all-MiniLM-L6-v2 [threads]
"""
import os, statistics, sys, tempfile, time

folder = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
os.environ["OMP_NUM_THREADS"] = str(threads)

import numpy as np
import torch
import transformers
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

torch.set_num_threads(threads)
here = os.path.dirname(os.path.abspath(__file__))
tok = transformers.AutoTokenizer.from_pretrained(folder)
model = transformers.AutoModel.from_pretrained(folder).eval()
V = model.config.vocab_size


def timed(run, B, S):
    rng = np.random.default_rng(7)
    ids = rng.integers(0, V, size=(B, S), dtype=np.int64)
    mask = np.ones((B, S), dtype=np.int64)
    for _ in range(3):
        run(ids, mask)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        run(ids, mask)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


lines = [l for l in open(os.path.join(here, "../../recipes/data/demo-heldout.txt"), encoding="utf-8").read().split("\n")][:96]


def embeddings(run):
    out = []
    for line in lines:
        enc = tok(line, truncation=True, max_length=128, return_tensors="np")
        h = run(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
        out.append(h[0].astype(np.float64).mean(0))
    return out


def torch_runner(m):
    def run(ids, mask):
        with torch.no_grad():
            return m(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                     token_type_ids=torch.zeros_like(torch.from_numpy(ids))).last_hidden_state.numpy()
    return run


reference = embeddings(torch_runner(model))
tmp = tempfile.mkdtemp()
fp32_path, int8_path = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model-int8.onnx")


class Wrapped(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state


dummy = torch.ones((1, 8), dtype=torch.int64)
# The exporter changes the module it traces, so it gets its own copy.
torch.onnx.export(Wrapped(transformers.AutoModel.from_pretrained(folder).eval()), (dummy, dummy, torch.zeros_like(dummy)), fp32_path, dynamo=False,
                  input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                  dynamic_axes={n: {0: "B", 1: "S"} for n in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
                  opset_version=17)
quantize_dynamic(fp32_path, int8_path, per_channel=True, weight_type=QuantType.QInt8)


def ort_runner(path):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

    def run(ids, mask):
        return s.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    return run


runners = {
    "PyTorch fp32 eager": torch_runner(model),
    "PyTorch dynamic int8": torch_runner(torch.ao.quantization.quantize_dynamic(
        transformers.AutoModel.from_pretrained(folder).eval(), {torch.nn.Linear}, dtype=torch.qint8)),
    "ONNX Runtime fp32": ort_runner(fp32_path),
    "ONNX Runtime int8 (per-channel)": ort_runner(int8_path),
}
print(f"threads {threads}")
print("runtime\tms 8x128\tms 1x128\tmean sentence cosine to fp32")
for name, run in runners.items():
    e = embeddings(run)
    cos = np.mean([a @ b / np.sqrt((a @ a) * (b @ b)) for a, b in zip(e, reference)])
    print(f"{name}\t{timed(run, 8, 128):.1f}\t{timed(run, 1, 128):.1f}\t{cos:.5f}")
