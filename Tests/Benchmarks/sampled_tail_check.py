"""The teacher cache's soft-target approximations, computed independently in PyTorch.

For a teacher with an MLM head (default: the head `distill fit-head` fitted on all-MiniLM-L6-v2,
runs/minilm-mlm) and the initial 3-layer student (its layers 0, 3, 5), on masked rows of held-out
text, the soft-target loss T² · KL(p_teacher ‖ p_student) at T:
  - with the full vocabulary;
  - with the top k and the tail's mass on m draws from the tail (token i with probability
    p_i / Σ_tail p), the tail's Σ p log p exact: what a version-3 cache stores. Draws are
    multinomial, or systematic over the tail in id order or sorted by teacher probability
    (Distillery bins by quarter-nats of log p, close to sorted);
  - with the tail's mass spread evenly over the V − k tokens (the version-2 tail logit).
Each draw scheme is repeated with 3 seeds: the spread is the estimate's sampling noise.

  python3 Tests/Benchmarks/sampled_tail_check.py [--model runs/minilm-mlm] [--heldout .data/heldout.txt]
"""
import argparse

import torch
from transformers import BertForMaskedLM, BertTokenizerFast

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="runs/minilm-mlm")
ap.add_argument("--heldout", default=".data/heldout.txt")
ap.add_argument("--lines", type=int, default=320)
ap.add_argument("--temperature", type=float, default=2.0)
ap.add_argument("--ks", default="64,512")
ap.add_argument("--ms", default="32,128,512")
args = ap.parse_args()
torch.manual_seed(0)
T = args.temperature

tok = BertTokenizerFast.from_pretrained(args.model)
teacher = BertForMaskedLM.from_pretrained(args.model).eval()
student = BertForMaskedLM.from_pretrained(args.model).eval()
student.bert.encoder.layer = torch.nn.ModuleList([student.bert.encoder.layer[i] for i in [0, 3, 5]])
lines = [l.strip() for l in open(args.heldout) if l.strip()][: args.lines]
zts, zss = [], []
with torch.no_grad():
    for i in range(0, len(lines), 16):
        enc = tok(lines[i : i + 16], return_tensors="pt", padding=True, truncation=True, max_length=128)
        ids = enc.input_ids.clone()
        real = enc.attention_mask.bool() & (ids != tok.cls_token_id) & (ids != tok.sep_token_id)
        masked = (torch.rand(ids.shape) < 0.15) & real
        ids[masked] = tok.mask_token_id
        zts.append(teacher(input_ids=ids, attention_mask=enc.attention_mask).logits[masked])
        zss.append(student(input_ids=ids, attention_mask=enc.attention_mask).logits[masked])
zt, zs = torch.cat(zts).double(), torch.cat(zss).double()
V = zt.shape[1]
lpt, lps = torch.log_softmax(zt / T, -1), torch.log_softmax(zs / T, -1)
pt = lpt.exp()
full = T * T * (pt * (lpt - lps)).sum(-1).mean().item()
print(f"{zt.shape[0]} masked rows, V = {V}, T = {T}: full soft-target loss {full:.5f}")


def rel(x):
    return f"{x:.5f} ({(x / full - 1) * 100:+.2f}%)"


for k in [int(x) for x in args.ks.split(",")]:
    top = zt.topk(k, -1).indices
    in_top = torch.zeros_like(zt, dtype=torch.bool).scatter_(1, top, True)
    zero = torch.zeros_like(pt)
    tau = 1 - torch.where(in_top, pt, zero).sum(-1)
    tail_plogp = torch.where(in_top, zero, pt * lpt).sum(-1)
    top_term = torch.where(in_top, pt * (lpt - lps), zero).sum(-1)
    p_tail = torch.where(in_top, zero, pt) / tau[:, None]
    # Even tail: each of the V − k tokens gets τ / (V − k).
    u = tau / (V - k)
    even = top_term + tau * torch.log(u) - u * torch.where(in_top, zero, lps).sum(-1)
    print(f"k = {k}: the top k hold {(1 - tau).mean().item() * 100:.2f}%; tail spread evenly {rel(T * T * even.mean().item())}")
    for m in [int(x) for x in args.ms.split(",")]:
        for scheme in ["multinomial", "systematic, id order", "systematic, sorted"]:
            out = []
            for seed in range(3):
                g = torch.Generator().manual_seed(seed)
                if scheme == "multinomial":
                    draws = torch.multinomial(p_tail, m, replacement=True, generator=g)
                else:
                    order = torch.argsort(p_tail, -1, descending=True) if "sorted" in scheme else torch.arange(V).expand_as(p_tail)
                    cdf = torch.gather(p_tail, 1, order).cumsum(-1)
                    points = ((torch.rand(p_tail.shape[0], 1, generator=g) + torch.arange(m)[None, :]) / m).double().contiguous()
                    draws = torch.gather(order, 1, torch.searchsorted(cdf, points).clamp(max=V - 1))
                est = top_term + tail_plogp - tau * torch.gather(lps, 1, draws).mean(-1)
                out.append(rel(T * T * est.mean().item()))
            print(f"  m = {m}, {scheme}: " + ", ".join(out))
