#!/usr/bin/env python3
"""An independent PyTorch emulation of Distillery's int8 scheme, to try variants of it cheaply.

It quantizes a BertModel's encoder linears the way `distill quantize` + the int8 kernels do and
prints the mean (and min) cosine of mean-pooled sentence embeddings to fp32 over the first 96
lines of recipes/data/demo-heldout.txt, the figure `QuantizationTests.testMiniLMInt8Fidelity`
checks (≥ 0.999):

- weights: W·diag(s) rounded to int8 per output row, scale max|row| / 127 (63 for `w7`);
- smoothing (QKV, attention-output and FFN-input linears): s_j = max|X_j|^α / max_n|W_nj|^(1−α),
  the ranges X_j observed on two batches of random tokens (ids ≥ 1000), 8 × 128 each, as
  `Smoothing.selfCalibrated` does (our random draws differ, so s differs slightly);
- activations: per token, asymmetric over [min(x, 0), max(x, 0)], `levels` + 1 codes
  (127: the 7-bit codes of the AVX2 kernel; 255: 8-bit, VNNI and AMX);
- two passes: the second quantizes what the first left, same rule.

- outlier channels: the k widest channels of an input (calibration range after smoothing)
  skip quantization and multiply the fp32 weight columns; the row scales are set without them.

It is a tool for choosing a scheme, not a fixture: nothing is compared to it bit for bit. On
all-MiniLM-L6-v2 it gives 0.99950 for the shipped scheme (7-bit, one pass, two outlier
channels on every layer input) where the Swift test prints 0.99949, and 0.99922 for the
version 1 scheme (7-bit, QKV in two passes, no outlier channels) where the Swift test printed
0.99921, so it tracks the real kernels closely. Variants (`--variants`):

  shipped        7-bit, one pass, 2 outlier channels on every input, alpha 0.5
  v1             7-bit, QKV in two passes, no outlier channels (the version 1 scheme)
  single         7-bit, every input one pass
  single8        8-bit, every input one pass
  alpha          7-bit single pass at alpha 0.3, 0.4, 0.6, 0.7
  shift          7-bit single pass with a per-channel shift (Outlier Suppression+): the
                 calibration range's centre z subtracted before quantization, W·z added back
  fp32-one       7-bit single pass with one QKV (or FFN-output) matrix left fp32, each in turn
  outliers       k = 2, 4, 8, 16 outlier channels on the QKV input, 4 and 8 on every input
  outliers-cheap bf16 outlier columns; 2 or 3 channels everywhere; all inputs but the FFN's
  halved         the shipped scheme with 7-bit weights: the file's int8 codes halved at load
                 (round half to even, |w| <= 64), or quantized to 7 bits directly
  a6             the shipped scheme with 6-bit activation codes (x <= 63) on some inputs:
                 two vpmaddubsw pair sums then add in int16 before widening
  w7             the version 1 scheme with 7-bit weights (±63) on some inputs' matrices: what
                 an AVX2 kernel that adds two vpmaddubsw results in int16 before widening
                 would need (4 products of 7-bit codes and 7-bit weights stay below 2^15)

  python3 Tests/Benchmarks/int8_scheme_sim.py .models/all-MiniLM-L6-v2 --variants shipped,v1,single,alpha
"""
import argparse
import os

import torch
from transformers import AutoTokenizer, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--variants", default="shipped,v1,single,single8,alpha,shift,fp32-one,outliers")
    ap.add_argument("--sentences", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tok = AutoTokenizer.from_pretrained(args.model)
    model = BertModel.from_pretrained(args.model).eval()
    text = open(os.path.join(HERE, "..", "..", "recipes", "data", "demo-heldout.txt"), encoding="utf-8").read()
    lines = [l for l in text.split("\n") if l][: args.sentences]
    enc = tok(lines, padding=True, truncation=True, max_length=128, return_tensors="pt")

    def embed():
        with torch.no_grad():
            h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)

    reference = embed()

    # Each linear input and the matrices that read it.
    groups = {}
    for i, layer in enumerate(model.encoder.layer):
        a = layer.attention
        groups[("qkv", i)] = [a.self.query, a.self.key, a.self.value]
        groups[("attention_output", i)] = [a.output.dense]
        groups[("ffn_input", i)] = [layer.intermediate.dense]
        groups[("ffn_output", i)] = [layer.output.dense]
    original = {id(l): (l.weight.data.clone(), l.bias.data.clone()) for ls in groups.values() for l in ls}

    # Per-channel max and min of every input on random tokens.
    g = torch.Generator().manual_seed(1)
    calib = torch.randint(1000, model.config.vocab_size, (16, 128), generator=g)
    ranges, hooks = {}, []
    for key, ls in groups.items():
        def observe(_mod, inp, key=key):
            x = inp[0].reshape(-1, inp[0].shape[-1])
            hi, lo = x.max(0).values, x.min(0).values
            if key in ranges:
                hi, lo = torch.maximum(ranges[key][0], hi), torch.minimum(ranges[key][1], lo)
            ranges[key] = (hi, lo)
        hooks.append(ls[0].register_forward_pre_hook(observe))
    with torch.no_grad():
        model(input_ids=calib, attention_mask=torch.ones_like(calib))
    for h in hooks:
        h.remove()

    def quantize_rows(x, levels):
        lo = x.min(-1, keepdim=True).values.clamp(max=0)
        hi = x.max(-1, keepdim=True).values.clamp(min=0)
        scale = (hi - lo) / levels
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.round(-lo / scale)
        return (torch.clamp(torch.round(x / scale) + zero, 0, levels) - zero) * scale

    def install(levels=127, two_pass=("qkv",), alpha=0.5, shift=(), fp32=(),
                smoothed=("qkv", "attention_output", "ffn_input"), w7=(), outliers={}, bf16_outliers=False, halve=False,
                a6=()):
        for key, ls in groups.items():
            W = torch.cat([original[id(l)][0] for l in ls], 0)
            hi, lo = ranges[key]
            if key[0] in smoothed:
                a = torch.maximum(hi.abs(), lo.abs()).clamp(min=1e-5)
                w = W.abs().max(0).values.clamp(min=1e-5)
                s = a ** alpha / w ** (1 - alpha)
            else:
                s = torch.ones(W.shape[1])
            Ws = W * s
            wl = 63 if key[0] in w7 else 127
            # Outlier channels (the k widest calibration ranges after smoothing) stay fp32 on
            # both sides; the rest is quantized without them.
            k_out = outliers.get(key[0], 0)
            O = torch.topk(torch.maximum(hi.abs(), lo.abs()) / s, k_out).indices if k_out else torch.zeros(0, dtype=torch.long)
            keepcol = torch.ones(W.shape[1], dtype=torch.bool)
            keepcol[O] = False
            Wi = Ws * keepcol
            step = Wi.abs().max(1, keepdim=True).values / wl
            Wq = torch.round(Wi / step) * step
            if halve:  # the int8 file's codes halved at load (round half to even): |w| <= 64
                Wq = torch.round(torch.round(Wi / step) / 2) * 2 * step
            Wq[:, O] = Ws[:, O].bfloat16().float() if bf16_outliers else Ws[:, O]
            z = (hi + lo) / 2 / s if key[0] in shift else torch.zeros_like(s)
            row = 0
            for l in ls:
                n = l.weight.shape[0]
                Wl, (W0, b0) = Wq[row:row + n], original[id(l)]
                row += n
                keep = key in fp32
                passes = 2 if key[0] in two_pass else 1
                lv = 63 if key[0] in a6 else levels

                def forward(x, Wl=Wl, W0=W0, b0=b0, s=s, z=z, keep=keep, passes=passes, O=O, keepcol=keepcol, levels=lv):
                    if keep:
                        return x @ W0.T + b0
                    xs = x / s - z
                    d = quantize_rows(xs * keepcol, levels)
                    if passes == 2:
                        d = d + quantize_rows((xs - d) * keepcol, levels)
                    d[..., O] = xs[..., O]
                    return d @ Wl.T + Wl @ z + b0
                l.forward = forward

    def run(name, **kw):
        install(**kw)
        c = torch.nn.functional.cosine_similarity(embed(), reference, dim=-1)
        print(f"{name:44s} mean cosine {c.mean().item():.5f}  min {c.min().item():.5f}", flush=True)

    L = len(model.encoder.layer)
    for v in args.variants.split(","):
        every = ("qkv", "attention_output", "ffn_input", "ffn_output")
        if v == "shipped":
            run("7-bit, one pass, 2 outlier channels (shipped)", two_pass=(), outliers={k: 2 for k in every})
        elif v == "v1":
            run("7-bit, QKV two passes (version 1)")
        elif v == "single":
            run("7-bit, one pass", two_pass=())
        elif v == "single8":
            run("8-bit, one pass", levels=255, two_pass=())
        elif v == "alpha":
            for a in (0.3, 0.4, 0.6, 0.7):
                run(f"7-bit, one pass, alpha {a}", two_pass=(), alpha=a)
        elif v == "shift":
            run("7-bit, one pass, QKV input shifted", two_pass=(), shift=("qkv",))
            run("7-bit, one pass, every input shifted", two_pass=(),
                shift=("qkv", "attention_output", "ffn_input", "ffn_output"))
        elif v == "fp32-one":
            for kind in ("qkv", "ffn_output"):
                for i in range(L):
                    run(f"7-bit, one pass, {kind} {i} fp32", two_pass=(), fp32=((kind, i),))
        elif v == "w7":
            run("7-bit weights everywhere, QKV two passes", w7=every)
            run("7-bit weights on the FFN, QKV two passes", w7=("ffn_input", "ffn_output"))
            run("7-bit weights but QKV, QKV two passes", w7=("attention_output", "ffn_input", "ffn_output"))
            for k in every:
                run(f"7-bit weights on {k} only", w7=(k,))
        elif v == "a6":
            # 6-bit activation codes (x <= 63) on some inputs: there two vpmaddubsw pair sums
            # (each at most 2 * 63 * 127) add in int16 before widening, a quarter fewer
            # multiply-port instructions on AVX2 without VNNI.
            for ins in (("ffn_output",), ("ffn_input",), ("qkv",), ("attention_output",), ("ffn_input", "ffn_output"), every):
                run("shipped, 6-bit codes on " + "+".join(ins), two_pass=(), outliers={k: 2 for k in every}, a6=ins)
        elif v == "halved":
            run("shipped, int8 weights halved at load", two_pass=(), outliers={k: 2 for k in every}, halve=True)
            run("shipped, 7-bit weights quantized directly", two_pass=(), outliers={k: 2 for k in every}, w7=every)
        elif v == "outliers-cheap":
            run("7-bit, one pass, 4 channels everywhere, bf16 columns", two_pass=(), outliers={k: 4 for k in every}, bf16_outliers=True)
            for k in (2, 3):
                run(f"7-bit, one pass, {k} channels everywhere", two_pass=(), outliers={i: k for i in every})
            run("7-bit, one pass, 4 channels but FFN input", two_pass=(), outliers={i: 4 for i in every if i != "ffn_input"})
        elif v == "outliers":
            for k in (2, 4, 8, 16):
                run(f"7-bit, one pass, {k} QKV-input channels fp32", two_pass=(), outliers={"qkv": k})
            for k in (4, 8):
                run(f"7-bit, one pass, {k} channels fp32 everywhere", two_pass=(),
                    outliers={"qkv": k, "attention_output": k, "ffn_input": k, "ffn_output": k})
                run(f"7-bit, QKV two passes, {k} channels fp32 elsewhere",
                    outliers={"attention_output": k, "ffn_input": k, "ffn_output": k})
        else:
            raise SystemExit(f"unknown variant {v!r}")


if __name__ == "__main__":
    main()
