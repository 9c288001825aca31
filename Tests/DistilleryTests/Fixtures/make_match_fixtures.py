"""Reference losses and gradients for intermediate-layer distillation ("layer
matches", as in TinyBERT and MiniLMv2), computed with transformers' BERT and
PyTorch autograd.

Run (OUTDIR is normally the folder holding this script):

    python3 make_match_fixtures.py OUTDIR [--teacher DIR] [--vocab FILE]

It writes four folders, OUTDIR/match-narrow, OUTDIR/match-same, OUTDIR/match-sentence and
OUTDIR/match-sentence-same
(--cases NAME,... writes only those), each holding

  model.safetensors, config.json  the student (BertModel without pooler,
                                  save_pretrained; tensor names = named_parameters)
  vocab.txt                       a copy of tiny-vocab/vocab.txt
  reference.safetensors           see below
  matches.json                    the matches, weights, float32 and float64 losses

The teacher is tiny-bert-mlm (BertForMaskedLM, V=512, H=64, 4 heads, 2 layers,
I=128, gelu), loaded with attn_implementation="eager"; only its encoder
(model.bert) is used, in eval mode under no_grad.  Students (dropout 0, eager
attention, vocab 512, 64 positions, 2 token types, random init (seeded) then
every parameter perturbed by N(0, 0.02^2) as in make_fixtures.py), run in train mode:

  match-narrow: H=32, 2 heads, 2 layers, I=64
  match-same:   H=64, 4 heads, 2 layers, I=128
  match-sentence: H=32, 2 heads, 2 layers, I=64 (sentence matches through projections)
  match-sentence-same: H=64, 4 heads, 2 layers, I=128

Batch: B=3, S=10, lengths [10, 7, 4], padding id 0, token types as make_batch
in make_fixtures.py.

Notation.  h[l] [B,S,H]: hidden states (l=0 embedding output, l=1..L layer
outputs).  m[b,s]: attention_mask (1 real, 0 padding); n_tok = sum m; len_b =
sum_s m[b,s].  A[l] [B,NH,S,S], l>=1: attention probabilities of layer l as
output_attentions=True returns them with eager attention, i.e. softmax_j of
q_i.k_j/sqrt(D) + mask_j with mask_j = 0 (real key) or finfo(float32).min
(padding key).  Q[l], K[l], V[l] [B,S,H]: outputs (with bias) of layer l's
query/key/value nn.Linear (forward hooks on encoder.layer[l-1].attention.self.*).
Sums over i run over real query rows only, sums over j over real keys only.

Loss kinds (teacher layer t, student layer s):

 hidden_mse(t,s): P(x) = x W^T + b (W [H_t,H_s], b [H_t], one per match, init
     N(0, 0.1^2) seeded, saved as proj.<i>.weight/.bias, trained) when
     H_s != H_t, else P = identity (no parameters).
     loss = sum_{b, real s, c} (P(h_s[s]) - h_t[t])^2 / (n_tok * H_t)
 hidden_cos(t,s): same projection rule; over the n_tok real-token rows x=P(h_s),
     y=h_t: loss = mean_rows (1 - cos), with nn.CosineEmbeddingLoss (target 1,
     reduction mean), whose cos = x.y / sqrt((|x|^2 + 1e-12)(|y|^2 + 1e-12)).
 sentence_mse(t,s): mean pooling as sentence-transformers' Pooling(mode mean):
     u[b] = sum_{real s} h[b,s] / len_b; the projection rule above, applied to the pooled
     student vector; loss = nn.MSELoss()(P(u_s), u_t) = sum_{b,c} (P(u_s) - u_t)^2 / (B * H_t)
 attention_kl(t,s): log A_s = log_softmax_j(Q_s K_s^T/sqrt(D_s) + mask) from the
     hooked student Q, K (checked against output_attentions within 1e-6).
     NH_t == NH_s: loss = sum_{b,h,real i,real j} [xlogy(A_t,A_t) - A_t log A_s]
                         / (NH * n_tok)
     NH_t != NH_s: Abar = mean_h A (teacher: of output_attentions);
                   log Abar_s = logsumexp_h(log A_s) - log NH_s;
                   loss = sum_{b,real i,real j} [xlogy(Abar_t,Abar_t)
                          - Abar_t log Abar_s] / n_tok
 attention_mse(t,s): A_s, A_t = output_attentions (head-averaged when the head
     counts differ, then NH := 1):
     loss = sum_{b,h,real i,real j} (A_s - A_t)^2 / (NH * sum_b len_b^2)
 relation(t,s,R): for X in (Q, K, V) of layer t (teacher) / s (student), split
     the channels into R contiguous groups of d = H/R (d_t, d_s may differ):
     z[b,r,i,j] = X_r[b,i].X_r[b,j]/sqrt(d) + mask_j;
     rel_t = softmax_j z_t; log rel_s = log_softmax_j z_s;
     loss = sum_X sum_{b,r,real i,real j} [xlogy(rel_t,rel_t) - rel_t log rel_s]
            / (R * n_tok)

Weights w_i = 1 + 0.25 i; loss_total = sum_i w_i loss_i.

Precision: everything (models, projections, losses, gradients) is float32, as a
PyTorch user would run it.  The same computation is repeated on float64 copies
of teacher, student and projections; those losses go to matches.json
(loss_float64) so the float32 error is visible, together with the largest
float32-vs-float64 gradient difference (per match and for the total).  The float64 losses are also checked
against an independent per-sequence implementation (real tokens sliced out,
no masks) to 1e-10.

reference.safetensors: input_ids, attention_mask, token_type_ids (int64);
proj.<i>.weight/.bias; loss.<i> [1]; loss_total [1]; grad.total.<name> for
every student parameter and grad.total.proj.<i>.weight/.bias (gradient of
loss_total); grad.<i>.<name> and grad.<i>.proj.<j>.* (gradient of the
unweighted loss_i alone).  Parameters a loss does not reach (e.g. later layers
for an h[0] match, other matches' projections) get an all-zero gradient.

Needs: torch, transformers, safetensors, numpy.
"""
import argparse, copy, json, math, os, random, shutil

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))


def seed_all(s):
    random.seed(s); np.random.seed(s); torch.manual_seed(s)


def perturb_(model, scale=0.02, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def make_batch(vocab, B, S, seed, type_vocab=2, pad_lengths=None):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (B, S), generator=g)
    mask = torch.ones(B, S, dtype=torch.long)
    lengths = pad_lengths or [S] * B
    for b, L in enumerate(lengths):
        mask[b, L:] = 0
        ids[b, L:] = 0          # [PAD] id 0
        ids[b, 0] = 2           # a stand-in [CLS]
    tt = torch.zeros(B, S, dtype=torch.long)
    if type_vocab > 1:
        for b, L in enumerate(lengths):
            tt[b, L // 2:L] = 1
    return ids, mask, tt


CASES = {
    "match-narrow": dict(
        seed=2468, H=32, NH=2, L=2, I=64,
        matches=[("hidden_mse", 0, 0, None), ("hidden_mse", 2, 2, None), ("hidden_cos", 1, 1, None),
                 ("attention_kl", 2, 2, None), ("attention_mse", 1, 1, None),
                 ("relation", 2, 2, 2), ("relation", 1, 1, 4)]),
    "match-same": dict(
        seed=1357, H=64, NH=4, L=2, I=128,
        matches=[("hidden_mse", 1, 1, None), ("hidden_cos", 2, 2, None), ("attention_kl", 2, 2, None),
                 ("attention_mse", 1, 2, None), ("relation", 2, 2, 4), ("hidden_mse", 0, 0, None)]),
    "match-sentence": dict(
        seed=9753, H=32, NH=2, L=2, I=64,
        matches=[("sentence_mse", 2, 2, None), ("sentence_mse", 1, 0, None), ("hidden_cos", 2, 2, None),
                 ("sentence_mse", 0, 1, None)]),
    "match-sentence-same": dict(
        seed=8642, H=64, NH=4, L=2, I=128,
        matches=[("hidden_mse", 2, 2, None), ("sentence_mse", 2, 2, None), ("sentence_mse", 1, 1, None)]),
}
BATCH_SEED, B, S, LENGTHS = 4242, 3, 10, [10, 7, 4]


# ---------------------------------------------------------------- forward
def run_encoder(enc, ids, mask, tt):
    """Forward with hidden states, attentions and hooked Q/K/V per layer (1-based)."""
    qkv, hooks = {}, []
    for li, layer in enumerate(enc.encoder.layer, start=1):
        for nm in ("query", "key", "value"):
            def hook(mod, inp, out, li=li, nm=nm):
                qkv[(nm, li)] = out
            hooks.append(getattr(layer.attention.self, nm).register_forward_hook(hook))
    try:
        out = enc(input_ids=ids, attention_mask=mask, token_type_ids=tt,
                  output_hidden_states=True, output_attentions=True)
    finally:
        for h in hooks:
            h.remove()
    assert len(out.hidden_states) == len(enc.encoder.layer) + 1
    assert len(out.attentions) == len(enc.encoder.layer)
    return dict(h=out.hidden_states, A=out.attentions, qkv=qkv, NH=enc.config.num_attention_heads)


def key_bias(mask, dtype):
    """[B,1,1,S] additive mask: 0 on real keys, finfo.min on padding (as HF eager)."""
    neg = torch.full(mask.shape, torch.finfo(dtype).min, dtype=dtype)
    return torch.where(mask.bool(), torch.zeros_like(neg), neg)[:, None, None, :]


def heads(x, n):
    Bx, Sx, Hx = x.shape
    return x.view(Bx, Sx, n, Hx // n).transpose(1, 2)       # [B,n,S,d]


def attn_logits(q, k, n, mask):
    qh, kh = heads(q, n), heads(k, n)
    return qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1]) + key_bias(mask, q.dtype)


def pair_mask(mask, dtype):
    """[B,1,S,S]: 1 where query i and key j are both real."""
    m = mask.to(dtype)
    return (m[:, :, None] * m[:, None, :])[:, None]


# ---------------------------------------------------------------- losses
def hidden_mse(hs, ht, mask, proj):
    x = proj(hs) if proj is not None else hs
    m = mask.to(hs.dtype)[..., None]
    n_tok = mask.sum()
    return ((x - ht) ** 2 * m).sum() / (n_tok * ht.shape[-1])


def hidden_cos(hs, ht, mask, proj):
    x = proj(hs) if proj is not None else hs
    sel = mask.bool()
    xs, ys = x[sel], ht[sel]                                  # [n_tok, H_t]
    return nn.CosineEmbeddingLoss(reduction="mean")(xs, ys, xs.new_ones(xs.shape[0]))


def mean_pool(h, mask):
    """sentence-transformers' mean pooling: sum over real tokens / their count."""
    m = mask.to(h.dtype)[..., None]
    return (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)


def sentence_mse(hs, ht, mask, proj):
    us = mean_pool(hs, mask)
    x = proj(us) if proj is not None else us
    return nn.MSELoss()(x, mean_pool(ht, mask))


def kl_rows(p_t, logp_s, pm, denom):
    """sum over real (i,j) of p_t (log p_t - logp_s) / denom; padding entries dropped."""
    term = torch.xlogy(p_t, p_t) - p_t * logp_s
    term = torch.where(pm.bool(), term, torch.zeros_like(term))
    return term.sum() / denom


def attention_kl(T, Sd, t, s, mask, check=True):
    logits = attn_logits(Sd["qkv"][("query", s)], Sd["qkv"][("key", s)], Sd["NH"], mask)
    logA_s = F.log_softmax(logits, dim=-1)
    if check:
        err = (logA_s.exp() - Sd["A"][s - 1]).abs().max().item()
        assert err < 1e-6, f"recomputed student attention differs by {err}"
    A_t = T["A"][t - 1]
    n_tok = mask.sum()
    pm = pair_mask(mask, A_t.dtype)
    if T["NH"] == Sd["NH"]:
        return kl_rows(A_t, logA_s, pm, T["NH"] * n_tok)
    Abar_t = A_t.mean(dim=1, keepdim=True)
    logAbar_s = torch.logsumexp(logA_s, dim=1, keepdim=True) - math.log(Sd["NH"])
    return kl_rows(Abar_t, logAbar_s, pm, n_tok)


def attention_mse(T, Sd, t, s, mask):
    A_s, A_t = Sd["A"][s - 1], T["A"][t - 1]
    nh = T["NH"]
    if T["NH"] != Sd["NH"]:
        A_s, A_t, nh = A_s.mean(dim=1, keepdim=True), A_t.mean(dim=1, keepdim=True), 1
    pm = pair_mask(mask, A_s.dtype)
    lens = mask.sum(dim=1)
    return (((A_s - A_t) ** 2) * pm).sum() / (nh * (lens ** 2).sum())


def relation(T, Sd, t, s, R, mask):
    n_tok = mask.sum()
    pm = pair_mask(mask, T["h"][0].dtype)
    total = 0.0
    for nm in ("query", "key", "value"):
        xt, xs = T["qkv"][(nm, t)], Sd["qkv"][(nm, s)]
        rel_t = F.softmax(attn_logits(xt, xt, R, mask), dim=-1)
        logrel_s = F.log_softmax(attn_logits(xs, xs, R, mask), dim=-1)
        total = total + kl_rows(rel_t, logrel_s, pm, R * n_tok)
    return total


def compute_losses(T, Sd, matches, projs, mask):
    out = []
    for i, (kind, t, s, R) in enumerate(matches):
        if kind == "hidden_mse":
            out.append(hidden_mse(Sd["h"][s], T["h"][t], mask, projs.get(i)))
        elif kind == "hidden_cos":
            out.append(hidden_cos(Sd["h"][s], T["h"][t], mask, projs.get(i)))
        elif kind == "sentence_mse":
            out.append(sentence_mse(Sd["h"][s], T["h"][t], mask, projs.get(i)))
        elif kind == "attention_kl":
            out.append(attention_kl(T, Sd, t, s, mask))
        elif kind == "attention_mse":
            out.append(attention_mse(T, Sd, t, s, mask))
        elif kind == "relation":
            out.append(relation(T, Sd, t, s, R, mask))
        else:
            raise ValueError(kind)
    return out


# ------------------------------------------- independent check (no masking)
def naive_losses(T, Sd, matches, projs, mask):
    """Per sequence, real tokens sliced out; every softmax over the real keys only."""
    lens = mask.sum(dim=1).tolist()
    n_tok = sum(lens)

    def probs(q, k, n):                      # q,k [L,H] -> log-probs [n,L,L]
        Lq, Hq = q.shape
        d = Hq // n
        qh, kh = q.view(Lq, n, d).transpose(0, 1), k.view(Lq, n, d).transpose(0, 1)
        return F.log_softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), dim=-1)

    res = []
    for i, (kind, t, s, R) in enumerate(matches):
        acc = 0.0
        for b, Lb in enumerate(lens):
            if kind == "sentence_mse":            # projection of each token, then the mean
                x = Sd["h"][s][b, :Lb]
                x = (projs[i](x) if i in projs else x).mean(0)
                y = T["h"][t][b, :Lb].mean(0)
                acc = acc + ((x - y) ** 2).sum() / (len(lens) * y.shape[-1])
            elif kind in ("hidden_mse", "hidden_cos"):
                x = Sd["h"][s][b, :Lb]
                x = projs[i](x) if i in projs else x
                y = T["h"][t][b, :Lb]
                if kind == "hidden_mse":
                    acc = acc + ((x - y) ** 2).sum() / (n_tok * y.shape[-1])
                else:
                    c = (x * y).sum(-1) / torch.sqrt(((x * x).sum(-1) + 1e-12) * ((y * y).sum(-1) + 1e-12))
                    acc = acc + (1 - c).sum() / n_tok
            elif kind in ("attention_kl", "attention_mse"):
                lt = probs(T["qkv"][("query", t)][b, :Lb], T["qkv"][("key", t)][b, :Lb], T["NH"])
                ls = probs(Sd["qkv"][("query", s)][b, :Lb], Sd["qkv"][("key", s)][b, :Lb], Sd["NH"])
                nh = T["NH"]
                if T["NH"] != Sd["NH"]:
                    lt = torch.log(lt.exp().mean(0, keepdim=True))
                    ls = torch.log(ls.exp().mean(0, keepdim=True))
                    nh = 1
                if kind == "attention_kl":
                    acc = acc + (lt.exp() * (lt - ls)).sum() / (nh * n_tok)
                else:
                    acc = acc + ((ls.exp() - lt.exp()) ** 2).sum() / (nh * sum(L * L for L in lens))
            else:
                for nm in ("query", "key", "value"):
                    xt, xs = T["qkv"][(nm, t)][b, :Lb], Sd["qkv"][(nm, s)][b, :Lb]
                    lt, ls = probs(xt, xt, R), probs(xs, xs, R)
                    acc = acc + (lt.exp() * (lt - ls)).sum() / (R * n_tok)
        res.append(acc)
    return res


# ---------------------------------------------------------------- driver
def make_case(name, spec, teacher, vocab_file, outdir, ids, mask, tt):
    tcfg = teacher.config
    seed_all(spec["seed"])
    cfg = BertConfig(vocab_size=tcfg.vocab_size, hidden_size=spec["H"], num_hidden_layers=spec["L"],
                     num_attention_heads=spec["NH"], intermediate_size=spec["I"],
                     max_position_embeddings=tcfg.max_position_embeddings,
                     type_vocab_size=tcfg.type_vocab_size, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, hidden_act="gelu", pad_token_id=0)
    cfg._attn_implementation = "eager"
    student = BertModel(cfg, add_pooling_layer=False)
    perturb_(student, seed=spec["seed"])
    assert student.config._attn_implementation == "eager"

    # projections (seeded, std 0.1) for hidden matches whose widths differ
    matches = spec["matches"]
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    projs = {}
    for i, (kind, t, s, R) in enumerate(matches):
        if kind in ("hidden_mse", "hidden_cos", "sentence_mse") and spec["H"] != tcfg.hidden_size:
            p = nn.Linear(spec["H"], tcfg.hidden_size)
            with torch.no_grad():
                p.weight.copy_(torch.randn(p.weight.shape, generator=g) * 0.1)
                p.bias.copy_(torch.randn(p.bias.shape, generator=g) * 0.1)
            projs[i] = p

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    student.save_pretrained(d, safe_serialization=True)
    shutil.copy(vocab_file, os.path.join(d, "vocab.txt"))

    named = dict(student.named_parameters())
    for i, p in projs.items():
        named[f"proj.{i}.weight"] = p.weight
        named[f"proj.{i}.bias"] = p.bias
    names, params = list(named), list(named.values())

    def forward(tch, stu, prj):
        tch.eval(); stu.train()
        with torch.no_grad():
            T = run_encoder(tch, ids, mask, tt)
        Sd = run_encoder(stu, ids, mask, tt)
        for tag, X in (("teacher", T), ("student", Sd)):   # hooked Q,K reproduce A
            for l in range(1, len(X["A"]) + 1):
                with torch.no_grad():
                    A = F.softmax(attn_logits(X["qkv"][("query", l)], X["qkv"][("key", l)], X["NH"], mask), -1)
                err = (A - X["A"][l - 1]).abs().max().item()
                assert err < 1e-6, (tag, l, err)
        return T, Sd, compute_losses(T, Sd, matches, prj, mask)

    # float32 reference
    T, Sd, losses = forward(teacher, student, projs)
    weights = [1 + 0.25 * i for i in range(len(matches))]
    total = sum(w * l for w, l in zip(weights, losses))

    def grads(loss):
        gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]

    ref = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
    for i, p in projs.items():
        ref[f"proj.{i}.weight"] = p.weight.detach().clone()
        ref[f"proj.{i}.bias"] = p.bias.detach().clone()
    for i, l in enumerate(losses):
        ref[f"loss.{i}"] = l.detach().reshape(1).float()
    ref["loss_total"] = total.detach().reshape(1).float()
    g_total = grads(total)
    for n, gv in zip(names, g_total):
        ref[f"grad.total.{n}"] = gv.detach().clone()
    for i, l in enumerate(losses):
        for n, gv in zip(names, grads(l)):
            ref[f"grad.{i}.{n}"] = gv.detach().clone()
    for k, v in ref.items():
        assert v.dtype in (torch.int64, torch.float32), (k, v.dtype)
        assert torch.isfinite(v.float()).all(), k
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(d, "reference.safetensors"))

    # float64 replica (losses + gradient comparison) and independent check
    t64 = copy.deepcopy(teacher).double()
    s64 = copy.deepcopy(student).double()
    p64 = {i: copy.deepcopy(p).double() for i, p in projs.items()}
    T64, S64, losses64 = forward(t64, s64, p64)
    total64 = sum(w * l for w, l in zip(weights, losses64))
    naive = naive_losses(T64, S64, matches, p64, mask)
    for i, (a, b) in enumerate(zip(losses64, naive)):
        assert abs(a.item() - b.item()) <= 1e-10 * max(1.0, abs(b.item())), (name, i, a.item(), b.item())
    params64 = list(dict(s64.named_parameters()).values())
    for i in sorted(p64):
        params64 += [p64[i].weight, p64[i].bias]
    def grad_err(l32, l64):
        """max |g32 - g64| and max |g64| over every parameter and projection."""
        g32s = grads(l32)
        g64s = torch.autograd.grad(l64, params64, retain_graph=True, allow_unused=True)
        err, mag = 0.0, 0.0
        for g32, gg in zip(g32s, g64s):
            gg = torch.zeros_like(g32, dtype=torch.float64) if gg is None else gg
            err = max(err, (g32.double() - gg).abs().max().item())
            mag = max(mag, gg.abs().max().item())
        return err, mag

    max_abs, max_ref = grad_err(total, total64)
    per_match = [grad_err(l32, l64) for l32, l64 in zip(losses, losses64)]

    info = {
        "teacher": "tiny-bert-mlm",
        "student": {"hidden_size": spec["H"], "num_attention_heads": spec["NH"],
                    "num_hidden_layers": spec["L"], "intermediate_size": spec["I"]},
        "batch": {"B": B, "S": S, "lengths": LENGTHS, "seed": BATCH_SEED},
        "seeds": {"student": spec["seed"], "projections": spec["seed"] + 1},
        "matches": [],
        "loss_total": total.item(),
        "loss_total_float64": total64.item(),
        "grad_total_max_abs_diff_float32_vs_float64": max_abs,
        "grad_total_max_abs_float64": max_ref,
    }
    for i, (kind, t, s, R) in enumerate(matches):
        m = {"index": i, "kind": kind, "teacher_layer": t, "student_layer": s}
        if R is not None:
            m["relation_heads"] = R
        m["weight"] = weights[i]
        m["projection"] = i in projs
        m["loss"] = losses[i].item()
        m["loss_float64"] = losses64[i].item()
        m["grad_max_abs_diff_float32_vs_float64"] = per_match[i][0]
        m["grad_max_abs_float64"] = per_match[i][1]
        info["matches"].append(m)
    with open(os.path.join(d, "matches.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--teacher", default=os.path.join(HERE, "tiny-bert-mlm"))
    ap.add_argument("--vocab", default=os.path.join(HERE, "tiny-vocab", "vocab.txt"))
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    a = ap.parse_args()
    torch.set_num_threads(2)
    teacher = BertForMaskedLM.from_pretrained(a.teacher, attn_implementation="eager").bert
    teacher.eval()
    assert teacher.config._attn_implementation == "eager"
    ids, mask, tt = make_batch(teacher.config.vocab_size, B, S, BATCH_SEED, 2, LENGTHS)
    for name in a.cases.split(","):
        spec = CASES[name]
        info = make_case(name, spec, teacher, a.vocab, a.outdir, ids, mask, tt)
        print(name)
        for m in info["matches"]:
            print(f"  {m['index']} {m['kind']:<14} t={m['teacher_layer']} s={m['student_layer']} "
                  f"R={m.get('relation_heads', '-')} w={m['weight']:.2f} "
                  f"loss={m['loss']:.9g} float64={m['loss_float64']:.12g} "
                  f"grad |f32-f64|max={m['grad_max_abs_diff_float32_vs_float64']:.3g} "
                  f"(max |g|={m['grad_max_abs_float64']:.3g})")
        print(f"  total={info['loss_total']:.9g} float64={info['loss_total_float64']:.12g} "
              f"grad |f32-f64|max={info['grad_total_max_abs_diff_float32_vs_float64']:.3g} "
              f"(max |g|={info['grad_total_max_abs_float64']:.3g})")


if __name__ == "__main__":
    main()
