"""What `distill bench forward` and `distill bench forward --precision int8` compare against, on the same
machine: all-MiniLM-L6-v2 in PyTorch eager (fp32 and dynamic int8) and ONNX Runtime (optimized
fp32 graph and dynamic int8 with per-channel weights), plus PyTorch bf16 autocast
(torch.autocast("cpu", dtype=torch.bfloat16) around the fp32 model's forward), ms per batch at
8 × 128 and 1 × 128 on random tokens (median of 20), and each reduced-precision model's mean
cosine to the fp32 mean-pooled sentence embeddings over the first 96 lines of
recipes/data/demo-heldout.txt (what Tests/DistilleryTests/QuantizationTests.swift measures for
Distillery). The CPU model and whether it has avx512_bf16 / amx_bf16 (without them PyTorch's
bf16 matmuls are emulated and slow) are printed first. For comparison only:

    pip install torch transformers onnx onnxruntime
    python3 Tests/Benchmarks/forward_bench.py .models/all-MiniLM-L6-v2 [threads] [--json]
        [--iterations 20] [--warmup 3]

--json prints every figure (and the machine) as one JSON object instead of the table.

On a shared host, whose speed can change by a third from one minute to the next, a ratio of two
medians taken minutes apart says little. --paired DISTILL --precision P --rounds R alternates
short runs instead: each round times one reference runtime (--only, default by precision:
ONNX Runtime int8, PyTorch fp32 eager, PyTorch bf16 autocast) for --iterations, then
`DISTILL bench forward --precision P` on the same shape, and prints every round's pair of medians
and their ratio, then the median ratio and its spread over the rounds, and the ratio of each
side's quietest round (a busy host only adds time):

    python3 Tests/Benchmarks/forward_bench.py .models/all-MiniLM-L6-v2 2 \
        --paired .build/release/distill --precision int8 --rounds 9 --iterations 8
"""
import argparse, json, os, statistics, sys, tempfile, time

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("folder", help="the all-MiniLM-L6-v2 folder (Hugging Face format)")
ap.add_argument("threads", nargs="?", type=int, default=2, help="threads (default 2)")
ap.add_argument("--iterations", type=int, default=20, help="timed runs per shape (median reported)")
ap.add_argument("--warmup", type=int, default=3, help="untimed runs per shape before them")
ap.add_argument("--json", action="store_true", help="print JSON")
ap.add_argument("--only", default="", help="comma-separated parts of runtime names to run, e.g. 'ONNX Runtime int8' (default: all)")
ap.add_argument("--paired", metavar="DISTILL", help="the distill binary: alternate short runs of it and one reference (see above)")
ap.add_argument("--precision", default="int8", choices=["int8", "fp32", "bf16"], help="with --paired: Distillery's precision (default int8)")
ap.add_argument("--rounds", type=int, default=9, help="with --paired: rounds per shape (default 9)")
args = ap.parse_args()
folder, threads = args.folder, args.threads
os.environ["OMP_NUM_THREADS"] = str(threads)

import numpy as np
import torch
import transformers
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

torch.set_num_threads(threads)
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from distill_bench import machine, machine_lines  # CPU model, bf16/AMX flags, torch version and capability

info = machine()
if not args.json:
    print("\n".join(machine_lines(info)), flush=True)
tok = transformers.AutoTokenizer.from_pretrained(folder)
model = transformers.AutoModel.from_pretrained(folder).eval()
V = model.config.vocab_size


def timed(run, B, S):
    rng = np.random.default_rng(7)
    ids = rng.integers(0, V, size=(B, S), dtype=np.int64)
    mask = np.ones((B, S), dtype=np.int64)
    for _ in range(args.warmup):
        run(ids, mask)
    times = []
    for _ in range(args.iterations):
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


def torch_runner(m, bf16=False):
    def run(ids, mask):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return m(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                     token_type_ids=torch.zeros_like(torch.from_numpy(ids))).last_hidden_state.float().numpy()
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
    "PyTorch bf16 autocast": torch_runner(model, bf16=True),
    "PyTorch dynamic int8": torch_runner(torch.ao.quantization.quantize_dynamic(
        transformers.AutoModel.from_pretrained(folder).eval(), {torch.nn.Linear}, dtype=torch.qint8)),
    "ONNX Runtime fp32": ort_runner(fp32_path),
    "ONNX Runtime int8 (per-channel)": ort_runner(int8_path),
}
def paired():
    """Alternating rounds of one reference runtime and `distill bench forward` (see the docstring)."""
    import subprocess
    default = {"int8": "ONNX Runtime int8", "fp32": "PyTorch fp32 eager", "bf16": "PyTorch bf16 autocast"}[args.precision]
    want = (args.only or default).lower()
    name = next((n for n in runners if want in n.lower()), None)
    if name is None:
        raise SystemExit(f"no runtime matches {want!r}: {', '.join(runners)}")
    run, out = runners[name], []
    for B, S in ((8, 128), (1, 128)):
        rows = []
        for r in range(args.rounds):
            ref = timed(run, B, S)
            cmd = [args.paired, "bench", "forward", "--model", folder, "--precision", args.precision, "--batch", f"{B}x{S}",
                   "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--threads", str(threads), "--json"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
            ours = json.loads(done.stdout)["results"][0]["medianMs"]
            rows.append({"round": r + 1, "reference_ms": ref, "distillery_ms": ours, "ratio": ref / ours})
            if not args.json:
                print(f"{B}x{S} round {r + 1}: {name} {ref:.1f} ms, Distillery {args.precision} {ours:.1f} ms, ratio {ref / ours:.2f}", flush=True)
        ratios = sorted(x["ratio"] for x in rows)
        q = lambda f: ratios[min(len(ratios) - 1, int(f * len(ratios)))]
        # A busy host only ever adds time, so each side's quietest round estimates its undisturbed
        # speed; reported beside the median ratio, not instead of it.
        best_ref, best_ours = min(x["reference_ms"] for x in rows), min(x["distillery_ms"] for x in rows)
        summary = {"shape": f"{B}x{S}", "reference": name, "precision": args.precision, "rounds": rows,
                   "median_ratio": statistics.median(ratios), "ratio_p25": q(0.25), "ratio_p75": q(0.75),
                   "best_reference_ms": best_ref, "best_distillery_ms": best_ours, "best_ratio": best_ref / best_ours}
        out.append(summary)
        if not args.json:
            print(f"{B}x{S}: median ratio {summary['median_ratio']:.2f} (quartiles {summary['ratio_p25']:.2f}-{summary['ratio_p75']:.2f}) "
                  f"over {len(rows)} rounds; quietest rounds {best_ref:.1f} against {best_ours:.1f} ms, "
                  f"ratio {summary['best_ratio']:.2f}", flush=True)
    if args.json:
        print(json.dumps({"machine": info, "threads": threads, "iterations": args.iterations, "paired": out}, indent=2))


if args.paired:
    paired()
    raise SystemExit(0)

results = []
if not args.json:
    print(f"threads {threads}")
    print("runtime\tms 8x128\tms 1x128\tmean sentence cosine to fp32", flush=True)
wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]
for name, run in runners.items():
    if wanted and not any(w in name.lower() for w in wanted):
        continue
    e = embeddings(run)
    cos = float(np.mean([a @ b / np.sqrt((a @ a) * (b @ b)) for a, b in zip(e, reference)]))
    r = {"runtime": name, "ms_8x128": timed(run, 8, 128), "ms_1x128": timed(run, 1, 128), "cosine_to_fp32": cos}
    results.append(r)
    if not args.json:
        print(f"{name}\t{r['ms_8x128']:.1f}\t{r['ms_1x128']:.1f}\t{cos:.5f}", flush=True)
if args.json:
    print(json.dumps({"machine": info, "threads": threads, "iterations": args.iterations, "warmup": args.warmup,
                      "sentences": len(lines), "onnxruntime": ort.__version__, "results": results}, indent=2))
