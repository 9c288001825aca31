"""The speed figures the CPU-speed issue (#10) asks for, measured in one run on this machine and
checked against its targets: what to run first on a new CPU (an Intel Xeon with AMX, an AMD
Zen 4), so every ratio comes from the same minutes.

    python3 Tests/Benchmarks/acceptance.py .models/all-MiniLM-L6-v2 \\
        [--distill .build/release/distill] [--threads 2] [--cases a,b,c] [--steps 5] \\
        [--rounds 5] [--iterations 8] [--no-demo] [--json]

It prints `distill doctor` (CPU, backend, kernels, measured product rates), then:

- training: for each `bench distill` case, Distillery just before and just after
  Tests/Benchmarks/distill_bench.py, in fp32 and, where the CPU has bf16 instructions
  (avx512_bf16 or amx_bf16 among doctor's extensions), also in bf16 on both sides; each side's
  best mode is compared (target: ≥ 1.5× PyTorch's tokens/s at ≤ ½ of its peak RSS); a mode
  that fails on either side is reported and left out;
- forward: Tests/Benchmarks/forward_bench.py --paired for fp32 (against PyTorch eager, target
  ≥ 1×), bf16 (against PyTorch bf16 autocast, ≥ 1.3×) and int8 (against ONNX Runtime int8
  per-channel, ≥ 1.5×), at 8 × 128 and 1 × 128: the median of the rounds' ratios is judged, the
  quietest rounds' ratio shown beside it;
- the demo: `distill run recipes/demo.toml --overwrite` (it replaces runs/demo), wall time (target
  ≤ 2 minutes).

int8's other condition (mean sentence cosine to fp32 ≥ 0.999 on the 96 held-out sentences) is
asserted by Tests/DistilleryTests/QuantizationTests.swift, not here. Needs torch, transformers,
onnx and onnxruntime (pip); takes about half an hour on 2 cores with all three cases. Exits 1
when a target is not met, 2 when a measurement fails.
"""
import argparse, json, os, re, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("folder", help="the all-MiniLM-L6-v2 folder (Hugging Face format)")
ap.add_argument("--distill", default=os.path.join(ROOT, ".build/release/distill"), help="the distill binary (a release build)")
ap.add_argument("--threads", type=int, default=2, help="threads on both sides (default 2)")
ap.add_argument("--cases", default="a,b,c", help="bench distill cases (default a,b,c)")
ap.add_argument("--steps", type=int, default=5, help="timed training steps per case and side (default 5)")
ap.add_argument("--rounds", type=int, default=5, help="paired forward rounds per shape and precision (default 5)")
ap.add_argument("--iterations", type=int, default=8, help="forward iterations per round (default 8)")
ap.add_argument("--no-demo", action="store_true", help="skip the demo recipe")
ap.add_argument("--json", action="store_true", help="print every figure as one JSON object")
args = ap.parse_args()
for name, value in (("--threads", args.threads), ("--steps", args.steps), ("--rounds", args.rounds), ("--iterations", args.iterations)):
    if value < 1:
        ap.error(f"{name} must be at least 1")
cases = [c.strip() for c in args.cases.split(",") if c.strip()]
if not cases or any(c not in ("a", "b", "c") for c in cases):
    ap.error(f"--cases takes a, b and c, comma-separated; got {args.cases!r}")
if not os.access(args.distill, os.X_OK):
    ap.error(f"{args.distill}: no distill binary there; build it with `swift build -c release`")


def say(text):
    if not args.json:
        print(text, flush=True)


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def run_json(cmd, tolerate_failure=False):
    """Runs cmd, which prints JSON last; its parsed output. With tolerate_failure, a non-zero exit
    that still printed JSON (distill_bench.py when one of its modes failed) is accepted."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 and not (tolerate_failure and done.stdout.strip()):
        fail(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    text = done.stdout
    # Anything printed before the JSON (a library's notice) is skipped: it starts at the first
    # line that opens an object or an array.
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.startswith(("{", "["))), None)
    if start is None:
        fail(f"{' '.join(cmd)} printed no JSON: {text.strip()[-2000:]}")
    return json.loads("".join(lines[start:]))


threads = ["--threads", str(args.threads)]
doctor = run_json([args.distill, "doctor", "--json"] + threads)
machine = doctor["machine"]
# bf16 instructions on the CPU (PyTorch's autocast uses them natively); oneDNN's bf16 products
# are what Distillery's bf16 needs to be fast, reported apart.
bf16 = bool({"avx512_bf16", "amx_bf16"} & set(machine["extensions"]))
say(f"CPU: {machine['cpuModel']}, {machine['logicalCPUs']} logical CPUs, {args.threads} threads; extensions {' '.join(machine['extensions'])}")
say(f"backend: {machine['backend']}; int8 kernel {doctor['int8Kernel']}; bf16 instructions {'yes' if bf16 else 'no'}, "
    f"oneDNN bf16 products {'yes' if doctor.get('oneDNNBF16') else 'no'}")
for r in doctor.get("rates", []):
    say(f"  {r['precision']:5} {r['gigaOpsPerSecond']:8.1f} G/s  {r['implementation']}")
for a in doctor.get("advice", []):
    say(f"  advice: {a}")
checks, report = [], {"doctor": doctor, "training": [], "forward": [], "demo": None}


def check(what, measured, target, met):
    checks.append({"criterion": what, "measured": measured, "target": target, "met": met})


def bench_distill(case, mode):
    return run_json([args.distill, "bench", "distill", "--cases", case, "--precision", mode, "--steps", str(args.steps), "--json"] + threads)


# Training: ours before and after PyTorch, each side's best mode.
modes = ["fp32", "bf16"] if bf16 else ["fp32"]
for case in cases:
    say(f"training case {case} ({', '.join(modes)}) …")
    ours = {m: bench_distill(case, m) for m in modes}
    torch_runs = run_json([sys.executable, os.path.join(HERE, "distill_bench.py"), "--cases", case, "--modes", ",".join(modes),
                           "--steps", str(args.steps), "--threads", str(args.threads), "--json"], tolerate_failure=True)["results"]
    for m in modes:
        ours[m] += bench_distill(case, m)
    mine = {m: (statistics.mean(r["tokensPerSecond"] for r in rs), max(r["peakRSSBytes"] for r in rs)) for m, rs in ours.items()}
    theirs = {r["mode"]: (r["tokensPerSecond"], r["peakRSSBytes"]) for r in torch_runs if r and "error" not in r}
    for r in torch_runs:
        if r and "error" in r:
            say(f"  PyTorch {r.get('mode')} failed: {r['error']}")
            check(f"bench distill {case}: PyTorch {r.get('mode')} ran", "failed", "runs", False)
    if not theirs:
        fail(f"distill_bench.py produced no result for case {case}")
    om = max(mine, key=lambda m: mine[m][0])
    tm = max(theirs, key=lambda m: theirs[m][0])
    ratio, rss = mine[om][0] / theirs[tm][0], mine[om][1] / theirs[tm][1]
    report["training"].append({"case": case, "distillery": {m: {"tokensPerSecond": v[0], "peakRSSBytes": v[1]} for m, v in mine.items()},
                               "pytorch": {m: {"tokensPerSecond": v[0], "peakRSSBytes": v[1]} for m, v in theirs.items()}})
    say(f"  Distillery {om}: {mine[om][0]:,.0f} tokens/s, {mine[om][1] / 1e9:.2f} GB; PyTorch {tm}: {theirs[tm][0]:,.0f} tokens/s, "
        f"{theirs[tm][1] / 1e9:.2f} GB: {ratio:.2f}× at {rss:.2f} of its RSS")
    check(f"bench distill {case}: Distillery {om} against PyTorch {tm}", f"{ratio:.2f}× at {rss:.2f} of its RSS", "≥ 1.5× at ≤ 0.5",
          ratio >= 1.5 and rss <= 0.5)

# Forward: paired rounds per precision.
targets = {"fp32": (1.0, "PyTorch fp32 eager"), "bf16": (1.3, "PyTorch bf16 autocast"), "int8": (1.5, "ONNX Runtime int8 per-channel")}
for precision, (target, against) in targets.items():
    say(f"forward {precision} against {against} ({args.rounds} paired rounds a shape) …")
    out = run_json([sys.executable, os.path.join(HERE, "forward_bench.py"), args.folder, str(args.threads), "--paired", args.distill,
                    "--precision", precision, "--rounds", str(args.rounds), "--iterations", str(args.iterations), "--json"])
    for s in out["paired"]:
        report["forward"].append(s)
        say(f"  {s['shape']}: median ratio {s['median_ratio']:.2f} (quartiles {s['ratio_p25']:.2f}–{s['ratio_p75']:.2f}); "
            f"quietest rounds {s['best_reference_ms']:.1f} against {s['best_distillery_ms']:.1f} ms ({s['best_ratio']:.2f}×)")
        note = " (this CPU has no bf16 instructions)" if precision == "bf16" and not bf16 else ""
        check(f"forward {precision} {s['shape']} against {against}{note}",
              f"{s['median_ratio']:.2f}× (quietest rounds {s['best_ratio']:.2f}×)", f"≥ {target}×", s["median_ratio"] >= target)

# The demo, timed from outside.
if not args.no_demo:
    say("demo recipe …")
    t0 = time.monotonic()
    done = subprocess.run([args.distill, "run", os.path.join(ROOT, "recipes/demo.toml"), "--overwrite"] + threads,
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        fail(f"the demo failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    cos = re.findall(r"held-out: hidden cosine ([0-9.]+), sentence cosine ([0-9.]+)", done.stdout + done.stderr)
    report["demo"] = {"seconds": wall, "sentenceCosine": float(cos[-1][1]) if cos else None}
    say(f"  {int(wall) // 60} min {int(wall) % 60} s, held-out sentence cosine {cos[-1][1] if cos else '?'}")
    check("demo recipe, wall time", f"{int(wall) // 60} min {int(wall) % 60} s", "≤ 2 min", wall <= 120)

report["checks"] = checks
if args.json:
    print(json.dumps(report, indent=2))
else:
    print()
    width = max(len(c["criterion"]) for c in checks)
    for c in checks:
        print(f"{'met    ' if c['met'] else 'NOT MET'}  {c['criterion'].ljust(width)}  {c['measured']}  (target {c['target']})")
sys.exit(0 if all(c["met"] for c in checks) else 1)
