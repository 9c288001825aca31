"""What `distill bench distill` compares against, on the same machine: the same distillation
training steps in PyTorch eager with Hugging Face transformers, written as the DistilBERT
distiller (transformers' research_projects/distillation, Distiller.step) writes them.

Cases (random weights with BERT's init, random tokens, batch 16 × 128, no padding):
  a) teacher BertForMaskedLM of the all-MiniLM-L6-v2 shape (6 × 384, 12 heads, I = 1536,
     V = 30,522) → student BertForMaskedLM made of its layers [0, 2, 4]
  b) teacher of the bert-base shape (12 × 768, 12 heads, I = 3072) → its layers [0, 2, 4, 7, 9, 11]
  c) the case-a teacher → AlbertForMaskedLM student, E = 128, H = 384, 12 heads, I = 1536,
     6 layers in 1 shared group, gelu

One step, as DistillBenchmark.swift times it: teacher forward (eval, no_grad), student forward
(train, dropout 0.1 in hidden and attention), the distiller's losses (soft targets
KL(batchmean) at T = 2 × T² over every token, MLM cross-entropy, cosine on the last hidden
states over every token; alphas 5 / 2 / 1), backward, clip_grad_norm_(5), AdamW
(lr 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0), zero_grad. Median of --steps timed
steps after --warmup untimed ones.

Modes: fp32 eager, and bf16 = torch.autocast("cpu", dtype=torch.bfloat16) around the forward
passes and the losses (backward outside it, as PyTorch recommends); the losses are computed in
float32 by casting the logits and hidden states with .float() (a no-op in fp32 mode).

Every (case, mode) runs in a fresh Python process, so the peak RSS reported
(getrusage(RUSAGE_SELF).ru_maxrss of that process) is its own. GFLOP/s uses the FLOP count of
DistillBenchmark.swift (teacher forward + heads, 3 × student forward + heads), so the column
compares directly with Distillery's.

    pip install torch transformers
    python3 Tests/Benchmarks/distill_bench.py [--cases a,b,c] [--modes fp32,bf16] [--steps 5]
        [--warmup 1] [--threads 2] [--attn sdpa|eager] [--adamw default|foreach|fused] [--json]
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, time

B, S, V = 16, 128, 30522
T, ALPHA_CE, ALPHA_MLM, ALPHA_COS = 2.0, 5.0, 2.0, 1.0
CASES = {
    # name: (teacher (H, L, heads, I), student, description as DistillBenchmark.Case.description)
    "a": ((384, 6, 12, 1536), ("layers", [0, 2, 4]),
          "all-MiniLM-L6-v2 shape (6 × 384, V = 30,522) → 3 layers × 384"),
    "b": ((768, 12, 12, 3072), ("layers", [0, 2, 4, 7, 9, 11]),
          "bert-base shape (12 × 768) → 6 layers × 768"),
    "c": ((384, 6, 12, 1536), ("albert", dict(embedding_size=128, hidden_size=384, num_attention_heads=12,
                                               intermediate_size=1536, num_hidden_layers=6)),
          "all-MiniLM-L6-v2 shape → ALBERT E = 128, H = 384, 6 layers all shared"),
}
MODES = ("fp32", "bf16")


def machine():
    """CPU model and bf16-relevant flags from /proc/cpuinfo, Python, torch and its CPU capability."""
    model, flags = None, set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model is None:
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    info = {"cpu": model or platform.processor() or "unknown", "cpus": os.cpu_count(),
            "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags, "amx_tile": "amx_tile" in flags,
            "python": platform.python_version()}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception as e:
        info["torch"] = f"unavailable ({e})"
    try:
        info["mkldnn_bf16_supported"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        pass
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except Exception:
        pass
    return info


def machine_lines(m):
    yes = lambda b: "yes" if b else "no"
    return [f"cpu  {m['cpu']}  ({m['cpus']} logical CPUs)  avx512_bf16 {yes(m['avx512_bf16'])}  "
            f"amx_bf16 {yes(m['amx_bf16'])}",
            f"torch {m.get('torch')}  CPU capability {m.get('torch_cpu_capability')}  "
            f"transformers {m.get('transformers')}  python {m['python']}"]


# ---------------------------------------------------------------------------------------------
# Child: one case in one mode.


def distill_losses(s_out, t_out, mask, labels, T):
    """The loss code of make_fixtures.distill_losses (transformers' DistilBERT Distiller.step,
    MLM case, soft targets over every non-padding token), with the logits and hidden states
    cast to float32 so that under bf16 autocast the losses are computed in float32."""
    import torch
    import torch.nn as nn
    s_logits, t_logits = s_out.logits.float(), t_out.logits.float()
    Vs = s_logits.size(-1)
    sel = mask.unsqueeze(-1).expand_as(s_logits).bool()
    s_sl = torch.masked_select(s_logits, sel).view(-1, Vs)
    t_sl = torch.masked_select(t_logits, sel).view(-1, Vs)
    loss_ce = nn.KLDivLoss(reduction="batchmean")(
        nn.functional.log_softmax(s_sl / T, dim=-1),
        nn.functional.softmax(t_sl / T, dim=-1)) * T ** 2
    loss_mlm = nn.CrossEntropyLoss(ignore_index=-100)(s_logits.view(-1, Vs), labels.view(-1))
    sh, th = s_out.hidden_states[-1].float(), t_out.hidden_states[-1].float()
    D = sh.size(-1)
    hm = mask.unsqueeze(-1).expand_as(sh).bool()
    s_h = torch.masked_select(sh, hm).view(-1, D)
    t_h = torch.masked_select(th, hm).view(-1, D)
    loss_cos = nn.CosineEmbeddingLoss(reduction="mean")(s_h, t_h, s_h.new(s_h.size(0)).fill_(1))
    return loss_ce, loss_mlm, loss_cos


def forward_flops(H, I, steps, E=None):
    """EncoderConfig.forwardFLOPs of Distillery (ModelStore.swift), at B × S."""
    N = B * S
    linear = 2 * N * (4 * H * H + 2 * H * I)
    attention = 2 * 2 * B * S * S * H
    projection = 2 * N * E * H if E is not None and E != H else 0
    return steps * (linear + attention) + projection


def head_flops(H, Ht):
    N = B * S
    return 2 * N * H * Ht + 2 * N * Ht * V


def build(case, attn):
    import torch
    from transformers import AlbertConfig, AlbertForMaskedLM, BertConfig, BertForMaskedLM
    (H, L, NH, I), (kind, spec), _ = CASES[case]
    kw = {"attn_implementation": attn} if attn else {}
    tcfg = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=NH,
                      intermediate_size=I, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                      layer_norm_eps=1e-12, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **kw)
    torch.manual_seed(1)
    teacher = BertForMaskedLM(tcfg)  # BERT's init: normal(0, 0.02), LayerNorm 1/0, biases 0
    torch.manual_seed(2)
    if kind == "layers":
        # DistilBERT-style: the chosen teacher layers, embeddings and MLM head copied.
        scfg = BertConfig(**{**tcfg.to_dict(), "num_hidden_layers": len(spec)}, **kw)
        student = BertForMaskedLM(scfg)
        sd, student_sd = teacher.state_dict(), {}
        for k, v in sd.items():
            if ".encoder.layer." in k:
                i = int(k.split(".encoder.layer.")[1].split(".")[0])
                if i in spec:
                    student_sd[k.replace(f".encoder.layer.{i}.", f".encoder.layer.{spec.index(i)}.")] = v.clone()
            else:
                student_sd[k] = v.clone()
        student.load_state_dict(student_sd, strict=False)
        s_flops = forward_flops(H, I, len(spec)) + head_flops(H, H)
    else:
        # ALBERT student, randomly initialised (Distillery starts it from the teacher's truncated
        # SVD and middle layer: the values do not change the work of a step).
        acfg = AlbertConfig(vocab_size=V, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                            num_hidden_groups=1, inner_group_num=1, layer_norm_eps=1e-12,
                            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                            classifier_dropout_prob=0.1, pad_token_id=0, **spec, **kw)
        student = AlbertForMaskedLM(acfg)
        Hs, E = spec["hidden_size"], spec["embedding_size"]
        s_flops = forward_flops(Hs, spec["intermediate_size"], spec["num_hidden_layers"], E) + head_flops(Hs, E)
    t_flops = forward_flops(H, I, L) + head_flops(H, H)
    return teacher, student, t_flops + 3 * s_flops


def count(model):
    return sum(p.numel() for p in model.parameters())  # tied decoder weights and bias counted once


def child(case, mode, steps, warmup, threads, attn, adamw):
    import contextlib
    import torch
    torch.set_num_threads(threads)
    teacher, student, flops = build(case, attn)
    teacher.eval()
    student.train()

    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1000, V, (B, S), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    pick = torch.rand((B, S), generator=g) < 0.15
    pick[:, 0] = pick[:, -1] = False
    labels = torch.where(pick, ids, torch.full_like(ids, -100))
    masked = ids.masked_fill(pick, 103)
    mask = torch.ones(B, S, dtype=torch.long)
    tt = torch.zeros(B, S, dtype=torch.long)

    # The distiller's AdamW parameter groups (no decay on biases and LayerNorm weights); the
    # weight decay is 0 here as in DistillBenchmark.swift, so the groups only mirror the code.
    named = dict(student.named_parameters())
    nd = lambda n: any(k in n for k in ("bias", "LayerNorm.weight"))
    groups = [{"params": [p for n, p in named.items() if not nd(n)], "weight_decay": 0.0},
              {"params": [p for n, p in named.items() if nd(n)], "weight_decay": 0.0}]
    impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[adamw]
    opt = torch.optim.AdamW(groups, lr=5e-4, betas=(0.9, 0.98), eps=1e-6, **impl)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if mode == "bf16" else contextlib.nullcontext
    losses = {}

    def step():
        with autocast():
            with torch.no_grad():
                t_out = teacher(input_ids=masked, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
            s_out = student(input_ids=masked, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
            ce, mlm, cos = distill_losses(s_out, t_out, mask, labels, T)
            loss = ALPHA_CE * ce + ALPHA_MLM * mlm + ALPHA_COS * cos
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
        opt.step()
        opt.zero_grad()
        losses.update(total=loss.item(), ce=ce.item(), mlm=mlm.item(), cos=cos.item())

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    desc = CASES[case][2].split(" → ")
    return {"name": case, "mode": mode, "teacher": desc[0], "student": desc[-1], "batch": B, "sequence": S,
            "secondsPerStep": sec, "tokensPerSecond": B * S / sec, "gflops": flops / sec / 1e9,
            "peakRSSBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: KiB
            "teacherParameters": count(teacher), "studentParameters": count(student),
            "stepSeconds": times, "lastLosses": losses, "threads": torch.get_num_threads(),
            "attention": student.config._attn_implementation, "adamw": adamw}


# ---------------------------------------------------------------------------------------------
# Parent: one fresh process per (case, mode), then the table.


def grouped(n):
    return f"{int(n):,}"


def table(header, rows):
    width = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(width[i]) if i == 0 else c.rjust(width[i]) for i, c in enumerate(r))
    return "\n".join([line(header), "──".join("─" * w for w in width)] + [line(r) for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="a,b,c", help="cases to run: a, b, c (comma-separated)")
    ap.add_argument("--modes", default="fp32,bf16", help="fp32, bf16 (comma-separated)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per case (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (and OMP_NUM_THREADS)")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default=None,
                    help="transformers attention implementation (default: transformers' own default)")
    ap.add_argument("--adamw", choices=["default", "foreach", "fused"], default="default",
                    help="torch.optim.AdamW implementation (default: PyTorch's choice)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cases = [c for c in a.cases.split(",") if c]
    modes = [m for m in a.modes.split(",") if m]
    for c in cases:
        if c not in CASES: ap.error(f"unknown case '{c}' (a, b, c)")
    for m in modes:
        if m not in MODES: ap.error(f"unknown mode '{m}' (fp32, bf16)")
    if a.steps < 1 or a.warmup < 0: ap.error("--steps must be at least 1 and --warmup at least 0")

    if a.child:
        print(json.dumps(child(cases[0], modes[0], a.steps, a.warmup, a.threads, a.attn, a.adamw)))
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    results, failed = [], False
    for c in cases:
        for m in modes:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--cases", c, "--modes", m,
                   "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads), "--adamw", a.adamw]
            if a.attn: cmd += ["--attn", a.attn]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True)  # stderr passes through
            try:
                results.append(json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None)
            except (ValueError, IndexError):
                results.append(None)
            if results[-1] is None:
                failed = True
                print(f"benchmark case {c} ({m}) failed (exit status {p.returncode})", file=sys.stderr)
                results[-1] = {"name": c, "mode": m, "error": f"exit status {p.returncode}"}
    info = machine()
    if a.json:
        print(json.dumps({"machine": info, "threads": a.threads, "results": results}, indent=2, sort_keys=True))
    else:
        rows = []
        for r in results:
            if "error" in r:
                rows.append([r["name"], r["mode"], "failed", "", "", "", ""])
                continue
            rows.append([r["name"], r["mode"], f"{r['secondsPerStep']:.3f}", grouped(r["tokensPerSecond"]),
                         f"{r['gflops']:.1f}", f"{r['peakRSSBytes'] / 1e9:.2f} GB",
                         f"{grouped(r['teacherParameters'])} → {grouped(r['studentParameters'])}"])
        attn = next((r["attention"] for r in results if "attention" in r), a.attn or "default")
        print("\n".join(machine_lines(info)))
        print(f"PyTorch eager distill  batch {B}×{S}  threads {a.threads}  steps {a.steps} (median) after {a.warmup} warm-up  "
              f"attention {attn}  AdamW {a.adamw}")
        print(table(["case", "mode", "s/step", "tokens/s", "GFLOP/s", "peak RSS", "teacher → student parameters"], rows))
        for c in cases:
            print(f"  {c}) {CASES[c][2]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
