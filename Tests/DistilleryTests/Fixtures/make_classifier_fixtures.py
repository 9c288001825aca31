"""Sequence-classification, task-distillation and uneven-ALBERT reference fixtures, made with
Hugging Face transformers (5.x) + PyTorch autograd.  Run from anywhere:

    python3 make_classifier_fixtures.py OUTDIR [--source-dir DIR]

OUTDIR is normally this folder (Tests/DistilleryTests/Fixtures).  DIR (default: the folder
holding this script) must contain tiny-bert-mlm, tiny-distilbert-mlm, tiny-albert-mlm (made by
make_fixtures.py) and tiny-vocab/vocab.txt.  Everything is deterministic: fixed seeds (SEED..SEED+6
below), one CPU thread, dropout 0 everywhere, eager attention.  Every parameter of every model is
perturbed (make_fixtures.perturb_: + N(0, 0.02^2) noise) so no wiring mistake can hide behind a
zero bias or a unit LayerNorm.  Conventions follow make_fixtures.py: safetensors files, input_ids /
attention_mask / token_type_ids / labels as int64, everything else float32; losses have shape [1].

Common batch (make_fixtures.make_batch, seed SEED+6): B = 3, S = 9, real lengths [9, 6, 4],
padding id 0 (attention_mask 0 on padding), id 2 (a stand-in [CLS]) at position 0, other ids
uniform in [5, 512), token_type_ids = 1 on positions [L//2, L) of each row (0 elsewhere, 0 on
padding).  labels = [2, 0, 1] (int64 [B]).

Folders written (each also gets vocab.txt copied from tiny-vocab/vocab.txt):

1. classifier-bert, classifier-distilbert, classifier-albert
   BertForSequenceClassification / DistilBertForSequenceClassification /
   AlbertForSequenceClassification, num_labels 3, problem_type "single_label_classification",
   every dropout 0 (hidden/attention dropout, classifier_dropout, seq_classif_dropout, qa_dropout,
   classifier_dropout_prob).  Encoder weights are loaded from the matching tiny-*-mlm fixture
   (the MLM head is dropped); the new head -- BERT bert.pooler.dense + classifier, DistilBERT
   pre_classifier + classifier, ALBERT albert.pooler + classifier -- is freshly initialised
   with weight matrices N(0, 0.15^2) and zero biases (wider than the stock 0.02 so the logits are
   O(1), the loss is not just ln 3 and tanh / relu really bend); then every parameter is perturbed.  Files: config.json, model.safetensors (save_pretrained),
   vocab.txt, step.json, reference.safetensors with
     input_ids, attention_mask [B,S] (+ token_type_ids [B,S] for BERT / ALBERT; DistilBERT takes none)
     labels [B]
     hidden_states.0 .. hidden_states.L   [B,S,H]  (output_hidden_states; L = 2 BERT/DistilBERT, 4 ALBERT;
                                              ALBERT's hidden_states.0 is after embedding_hidden_mapping_in, H wide)
     pooled [B,H]    BERT:       tanh(bert.pooler.dense(h_L[:,0]))
                     ALBERT:     tanh(albert.pooler(h_L[:,0]))
                     DistilBERT: relu(pre_classifier(h_L[:,0]))
     logits [B,3]    = classifier(pooled)
     loss [1]        = CrossEntropy(logits, labels), mean over B (what the model returns for labels=)
     grad.<name>     d loss / d param for every name in model.named_parameters() (== the keys
                     save_pretrained writes), from loss.backward() in train() mode
     after_step.<name>  the parameters after ONE torch.optim.AdamW step on those gradients:
                     lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 on every parameter
                     EXCEPT those whose name contains "bias", "LayerNorm.weight" or
                     "layer_norm.weight" (weight_decay 0; two param groups).  step.json records
                     this, the no-decay names, and the parameters whose gradient is ~0
                     mathematically (see "near_zero_grad" there: e.g. attention key biases, whose
                     gradient is exactly 0 in exact arithmetic because softmax is shift-invariant,
                     so PyTorch's float32 value is rounding noise and Adam's g/(|g|+eps) on it is
                     ill-conditioned -- compare those after_step entries loosely, or skip them).

2. task-distill-bert
   Teacher = classifier-bert (eval, no grad).  Student = BertForSequenceClassification with
   num_hidden_layers 1: embeddings, encoder layer 0, pooler and classifier copied from the teacher,
   then every student parameter perturbed again (seed SEED+3).  Student in train() mode.
     loss_soft  = KLDivLoss(reduction="batchmean")(log_softmax(s/T), softmax(t/T)) * T*T
                  over the B rows of class logits (s = student, t = teacher logits [B,3]); T = 2.0
                  i.e.  T^2/B * sum_b sum_c p_t[b,c] * (log p_t[b,c] - log_softmax(s/T)[b,c])
     loss_hard  = CrossEntropy(s, labels), mean over B
     loss_cos   = CosineEmbeddingLoss(reduction="mean", target +1) between the student's and the
                  teacher's LAST hidden states over the real tokens only (attention_mask == 1,
                  9+6+4 = 19 rows of width H): mean(1 - cos(s_h, t_h))
     loss_total = 0.7*loss_soft + 0.3*loss_hard + 0.5*loss_cos
   Files: config.json, model.safetensors (the student BEFORE the step), vocab.txt, step.json
   (temperature, alpha_soft, alpha_hard, alpha_cos), reference.safetensors with the inputs,
   labels, teacher_logits, student_logits [B,3], loss_soft, loss_hard, loss_cos, loss_total [1],
   grad.<name> of loss_total for every student parameter.

3. tiny-albert-uneven: AlbertForMaskedLM, num_hidden_layers 5, num_hidden_groups 2,
   inner_group_num 1, E 32, H 64, 4 heads, I 128, V 512, P 64, gelu_new, dropout 0, random init
   (seed SEED+4) then perturbed.  transformers (modeling_albert.AlbertTransformer.forward) picks
       group_idx = int(i / (num_hidden_layers / num_hidden_groups))   for layer i
   which here is int(i / 2.5):  layer 0 -> group 0, 1 -> 0, 2 -> 0, 3 -> 1, 4 -> 1
   (the FIRST group runs 3 times, the second twice; verified with forward hooks below).
   reference.safetensors exactly as make_fixtures.forward_reference: input_ids, attention_mask,
   token_type_ids [B,S], hidden_states.0..5 [B,S,64], logits [B,S,512].

   tiny-albert-groups2x2: the same but num_hidden_layers 6, num_hidden_groups 3, inner_group_num 2
   (seed SEED+5).  int(i / 2): layers 0,1 -> group 0; 2,3 -> group 1; 4,5 -> group 2, and each
   group application runs both of its AlbertLayers (albert_layer_groups.g.albert_layers.0 then .1),
   so 12 AlbertLayer applications in all.  In transformers 5 hidden states are captured by forward
   hooks on every AlbertLayer (AlbertPreTrainedModel._can_record_outputs = {"hidden_states":
   AlbertLayer}), so output_hidden_states returns 1 + 12 = 13 tensors, NOT num_hidden_layers + 1 = 7
   (transformers 4.x returned one per group application, i.e. 7):
       hidden_states.0         input of the first AlbertLayer (= embedding_hidden_mapping_in output)
       hidden_states.k, k>=1   output of AlbertLayer application k: layer i = (k-1)//2,
                               group int(i/2), inner layer (k-1)%2
   The per-layer outputs of transformers 4.x are hidden_states.0, .2, .4, .6, .8, .10, .12.
   reference.safetensors holds hidden_states.0..12 (all of them, as transformers returns them) and logits.

At the end every folder is reloaded with from_pretrained(attn_implementation="eager") and its
logits are compared with the reference (must agree within 1e-6; printed).

Needs torch, transformers, safetensors, numpy; imports make_fixtures.py from this folder.
"""
import argparse, json, os, shutil, sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import forward_reference, make_batch, perturb_, seed_all  # noqa: E402

from transformers import (AlbertConfig, AlbertForMaskedLM,  # noqa: E402
                          AlbertForSequenceClassification, BertConfig,
                          BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification)

SEED = 4321
B, S, LENGTHS = 3, 9, [9, 6, 4]
NUM_LABELS = 3
LABELS = [2, 0, 1]
ADAMW = {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
         "no_decay": ["bias", "LayerNorm.weight", "layer_norm.weight"]}
T, ALPHA_SOFT, ALPHA_HARD, ALPHA_COS = 2.0, 0.7, 0.3, 0.5
HEAD_STD = 0.15   # init std of the new head's weight matrices (biases start at 0)
NEAR_ZERO = 1e-6   # max |grad| below which a gradient is reported as "near_zero_grad"

FAMILIES = {
    # name: (source fixture, config class, classifier class, dropout overrides, uses token types)
    "bert": ("tiny-bert-mlm", BertConfig, BertForSequenceClassification,
             {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}, True),
    "distilbert": ("tiny-distilbert-mlm", DistilBertConfig, DistilBertForSequenceClassification,
                   {"dropout": 0.0, "attention_dropout": 0.0, "seq_classif_dropout": 0.0, "qa_dropout": 0.0}, False),
    "albert": ("tiny-albert-mlm", AlbertConfig, AlbertForSequenceClassification,
               {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout_prob": 0.0}, True),
}


def contiguous(ref):
    return {k: v.detach().contiguous() for k, v in ref.items()}


def copy_vocab(src_dir, outdir):
    shutil.copy(os.path.join(src_dir, "tiny-vocab", "vocab.txt"), os.path.join(outdir, "vocab.txt"))


def save_pretrained(model, outdir, src_dir):
    os.makedirs(outdir, exist_ok=True)
    model.save_pretrained(outdir, safe_serialization=True)
    copy_vocab(src_dir, outdir)
    saved = set(load_file(os.path.join(outdir, "model.safetensors")).keys())
    named = {n for n, _ in model.named_parameters()}
    assert named <= saved, ("parameters missing from model.safetensors", named - saved)
    extra = saved - named
    if extra:
        print(f"  note: {outdir} also holds non-parameter tensors {sorted(extra)}")


def model_inputs(family_uses_tt, ids, mask, tt):
    kw = dict(input_ids=ids, attention_mask=mask)
    if family_uses_tt:
        kw["token_type_ids"] = tt
    return kw


def pooled_of(family, model, h_last):
    cls = h_last[:, 0]
    if family == "bert":
        return model.bert.pooler(h_last)                    # tanh(dense(h[:, 0]))
    if family == "albert":
        return torch.tanh(model.albert.pooler(cls))
    return torch.relu(model.pre_classifier(cls))           # distilbert


def adamw_step(model):
    named = dict(model.named_parameters())
    is_nd = lambda n: any(k in n for k in ADAMW["no_decay"])  # noqa: E731
    decay = [p for n, p in named.items() if not is_nd(n)]
    no_decay = [p for n, p in named.items() if is_nd(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"])
    opt.step()
    return {f"after_step.{n}": p.detach().clone() for n, p in named.items()}, sorted(n for n in named if is_nd(n))


def make_classifier(family, src_dir, outdir, seed, ids, mask, tt, labels):
    src, Cfg, Cls, drop, use_tt = FAMILIES[family]
    src_cfg = json.load(open(os.path.join(src_dir, src, "config.json")))
    for k in ("architectures", "transformers_version", "model_type", "dtype"):
        src_cfg.pop(k, None)
    seed_all(seed)
    cfg = Cfg(**{**src_cfg, **drop, "num_labels": NUM_LABELS,
                 "problem_type": "single_label_classification"})
    cfg._attn_implementation = "eager"
    model = Cls(cfg)
    mlm = load_file(os.path.join(src_dir, src, "model.safetensors"))
    res = model.load_state_dict(mlm, strict=False)
    print(f"[classifier-{family}] new (not in {src}): {sorted(res.missing_keys)}")
    print(f"[classifier-{family}] dropped from {src}: {sorted(res.unexpected_keys)}")
    # the stock init (N(0, 0.02^2) weights) makes the head nearly linear and the logits ~0.1, so
    # the loss would sit at ln 3 and tanh / relu would barely bend: use a wider head init instead
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in res.missing_keys and p.dim() == 2:
                p.normal_(0.0, HEAD_STD)
    perturb_(model, seed=seed)
    d = os.path.join(outdir, f"classifier-{family}")
    save_pretrained(model, d, src_dir)
    head = [n for n, _ in model.named_parameters() if n in res.missing_keys]

    model.train()  # dropout is 0 everywhere: identical to eval(), but this is the training path
    out = model(**model_inputs(use_tt, ids, mask, tt), labels=labels, output_hidden_states=True)
    ce = nn.functional.cross_entropy(out.logits, labels)
    assert torch.equal(ce, out.loss), (ce, out.loss)
    pooled = pooled_of(family, model, out.hidden_states[-1])
    assert torch.allclose(model.classifier(pooled), out.logits, atol=1e-6, rtol=0)
    out.loss.backward()
    ref = {"input_ids": ids, "attention_mask": mask}
    if use_tt:
        ref["token_type_ids"] = tt
    ref["labels"] = labels
    for i, h in enumerate(out.hidden_states):
        ref[f"hidden_states.{i}"] = h
    ref["pooled"] = pooled
    ref["logits"] = out.logits
    ref["loss"] = out.loss.reshape(1)
    near_zero = {}
    for n, p in model.named_parameters():
        assert p.grad is not None, n
        ref[f"grad.{n}"] = p.grad.detach().clone()
        gmax = p.grad.abs().max().item()
        if gmax < NEAR_ZERO:
            near_zero[n] = gmax
    after, no_decay_names = adamw_step(model)
    ref.update(after)
    save_file(contiguous(ref), os.path.join(d, "reference.safetensors"))
    json.dump({"source_encoder": src, "num_labels": NUM_LABELS, "labels": LABELS,
               "loss": "CrossEntropyLoss (mean over the batch)",
               "head_parameters": head,
               "adamw": {**ADAMW, "no_decay_parameters": no_decay_names},
               "near_zero_grad": {"threshold": NEAR_ZERO, "max_abs_grad": near_zero}},
              open(os.path.join(d, "step.json"), "w"), indent=2)
    print(f"[classifier-{family}] head parameters: {head}")
    print(f"[classifier-{family}] loss {out.loss.item():.6f}; near-zero grads: {near_zero}")
    # reload the saved (pre-step) weights to fill the teacher later
    return d


def make_task_distill(src_dir, outdir, seed, ids, mask, tt, labels):
    teacher = BertForSequenceClassification.from_pretrained(
        os.path.join(outdir, "classifier-bert"), attn_implementation="eager").eval()
    tcfg = teacher.config.to_dict()
    for k in ("architectures", "transformers_version", "model_type", "dtype"):
        tcfg.pop(k, None)
    seed_all(seed)
    scfg = BertConfig(**{**tcfg, "num_hidden_layers": 1})
    scfg._attn_implementation = "eager"
    student = BertForSequenceClassification(scfg)
    sd = {}
    for k, v in teacher.state_dict().items():
        if ".encoder.layer." in k:
            if ".encoder.layer.0." in k:
                sd[k] = v.clone()
        else:
            sd[k] = v.clone()
    res = student.load_state_dict(sd, strict=True)
    assert not res.missing_keys and not res.unexpected_keys, res
    perturb_(student, seed=seed)
    d = os.path.join(outdir, "task-distill-bert")
    save_pretrained(student, d, src_dir)

    kw = dict(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
    with torch.no_grad():
        t_out = teacher(**kw)
    student.train()
    s_out = student(**kw)
    s, t = s_out.logits, t_out.logits
    loss_soft = nn.KLDivLoss(reduction="batchmean")(
        nn.functional.log_softmax(s / T, dim=-1), nn.functional.softmax(t / T, dim=-1)) * T ** 2
    loss_hard = nn.CrossEntropyLoss()(s, labels)
    sh, th = s_out.hidden_states[-1], t_out.hidden_states[-1]
    D = sh.size(-1)
    hm = mask.unsqueeze(-1).expand_as(sh).bool()
    s_h = torch.masked_select(sh, hm).view(-1, D)
    t_h = torch.masked_select(th, hm).view(-1, D)
    loss_cos = nn.CosineEmbeddingLoss(reduction="mean")(s_h, t_h, s_h.new(s_h.size(0)).fill_(1))
    total = ALPHA_SOFT * loss_soft + ALPHA_HARD * loss_hard + ALPHA_COS * loss_cos
    total.backward()
    ref = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt, "labels": labels,
           "teacher_logits": t, "student_logits": s,
           "loss_soft": loss_soft.reshape(1), "loss_hard": loss_hard.reshape(1),
           "loss_cos": loss_cos.reshape(1), "loss_total": total.reshape(1)}
    for n, p in student.named_parameters():
        assert p.grad is not None, n
        ref[f"grad.{n}"] = p.grad.detach().clone()
    save_file(contiguous(ref), os.path.join(d, "reference.safetensors"))

    # the same losses in float64 (to judge how much float32 rounding is in the reference values)
    t64 = BertForSequenceClassification.from_pretrained(
        os.path.join(outdir, "classifier-bert"), attn_implementation="eager").eval().double()
    s64 = BertForSequenceClassification.from_pretrained(d, attn_implementation="eager").eval().double()
    with torch.no_grad():
        a, b = s64(**kw), t64(**kw)
        ls = nn.KLDivLoss(reduction="batchmean")(nn.functional.log_softmax(a.logits / T, dim=-1),
                                                 nn.functional.softmax(b.logits / T, dim=-1)) * T ** 2
        lh = nn.CrossEntropyLoss()(a.logits, labels)
        sa = torch.masked_select(a.hidden_states[-1], hm).view(-1, D)
        ta = torch.masked_select(b.hidden_states[-1], hm).view(-1, D)
        lc = nn.CosineEmbeddingLoss(reduction="mean")(sa, ta, sa.new(sa.size(0)).fill_(1))
    exact = {"loss_soft": ls.item(), "loss_hard": lh.item(), "loss_cos": lc.item(),
             "loss_total": (ALPHA_SOFT * ls + ALPHA_HARD * lh + ALPHA_COS * lc).item()}
    for k, v in exact.items():
        print(f"[task-distill-bert] {k}: float32 {ref[k].item():.9g}  float64 {v:.9g}  "
              f"rel diff {abs(ref[k].item() - v) / abs(v):.2e}")
    json.dump({"teacher": "classifier-bert", "student_init": "teacher embeddings, encoder layer 0, pooler, "
               "classifier; then every parameter perturbed (N(0, 0.02^2), seed %d)" % seed,
               "temperature": T, "alpha_soft": ALPHA_SOFT, "alpha_hard": ALPHA_HARD, "alpha_cos": ALPHA_COS,
               "labels": LABELS, "float64_losses": exact},
              open(os.path.join(d, "step.json"), "w"), indent=2)
    print(f"[task-distill-bert] total {total.item():.6f} = {ALPHA_SOFT}*{loss_soft.item():.6f} + "
          f"{ALPHA_HARD}*{loss_hard.item():.6f} + {ALPHA_COS}*{loss_cos.item():.6f}")


def group_trace(model, ids, mask, tt):
    """Which albert_layer_groups module runs at each of the num_hidden_layers steps (forward hooks)."""
    calls, hooks = [], []
    for g, grp in enumerate(model.albert.encoder.albert_layer_groups):
        hooks.append(grp.register_forward_hook(lambda m, a, o, g=g: calls.append(g)))
    with torch.no_grad():
        model.eval()(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    for h in hooks:
        h.remove()
    return calls


def make_albert(name, src_dir, outdir, seed, layers, groups, inner, ids, mask, tt):
    seed_all(seed)
    cfg = AlbertConfig(vocab_size=512, embedding_size=32, hidden_size=64, num_hidden_layers=layers,
                       num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                       num_hidden_groups=groups, inner_group_num=inner, type_vocab_size=2,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       classifier_dropout_prob=0.0, hidden_act="gelu_new")
    cfg._attn_implementation = "eager"
    model = AlbertForMaskedLM(cfg)
    perturb_(model, seed=seed)
    d = os.path.join(outdir, name)
    save_pretrained(model, d, src_dir)
    calls = group_trace(model, ids, mask, tt)
    expected = [int(i / (layers / groups)) for i in range(layers)]
    assert calls == expected, (calls, expected)
    ref = forward_reference(model, ids, mask, tt)
    nh = sum(k.startswith("hidden_states.") for k in ref)
    print(f"[{name}] layer -> group: {dict(enumerate(calls))}; hidden_states returned: {nh} "
          f"(num_hidden_layers {layers}, inner_group_num {inner})")
    assert nh == 1 + layers * inner
    # hidden_states.0 is the input of the first AlbertLayer, after embedding_hidden_mapping_in
    with torch.no_grad():
        e = model.albert.embeddings(input_ids=ids, token_type_ids=tt)
        assert torch.allclose(model.albert.encoder.embedding_hidden_mapping_in(e), ref["hidden_states.0"])
    save_file(contiguous(ref), os.path.join(d, "reference.safetensors"))


def reload_checks(outdir, ids, mask, tt):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification
    cases = [("classifier-bert", AutoModelForSequenceClassification, True, "logits"),
             ("classifier-distilbert", AutoModelForSequenceClassification, False, "logits"),
             ("classifier-albert", AutoModelForSequenceClassification, True, "logits"),
             ("task-distill-bert", AutoModelForSequenceClassification, True, "student_logits"),
             ("tiny-albert-uneven", AutoModelForMaskedLM, True, "logits"),
             ("tiny-albert-groups2x2", AutoModelForMaskedLM, True, "logits")]
    ok = True
    for name, Auto, use_tt, key in cases:
        d = os.path.join(outdir, name)
        ref = load_file(os.path.join(d, "reference.safetensors"))
        m = Auto.from_pretrained(d, attn_implementation="eager").eval()
        with torch.no_grad():
            out = m(**model_inputs(use_tt, ref["input_ids"], ref["attention_mask"], ref.get("token_type_ids")),
                    output_hidden_states=True)
        diff = (out.logits - ref[key]).abs().max().item()
        hs = [k for k in ref if k.startswith("hidden_states.")]
        hdiff = max([(out.hidden_states[int(k.split(".")[1])] - ref[k]).abs().max().item() for k in hs] or [0.0])
        good = diff <= 1e-6 and hdiff <= 1e-6 and (not hs or len(out.hidden_states) == len(hs))
        ok &= good
        print(f"reload {name:24s} {type(m).__name__:34s} max|logits - ref| = {diff:.3e}  "
              f"max|hidden - ref| = {hdiff:.3e}  {'OK' if good else 'FAIL'}")
        if name == "task-distill-bert":
            t = Auto.from_pretrained(os.path.join(outdir, "classifier-bert"), attn_implementation="eager").eval()
            with torch.no_grad():
                tl = t(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
                       token_type_ids=ref["token_type_ids"]).logits
            tdiff = (tl - ref["teacher_logits"]).abs().max().item()
            ok &= tdiff <= 1e-6
            print(f"reload {'(teacher) classifier-bert':24s} max|teacher_logits - ref| = {tdiff:.3e}  "
                  f"{'OK' if tdiff <= 1e-6 else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="folder holding tiny-*-mlm and tiny-vocab (default: this script's folder)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import transformers
    print(f"torch {torch.__version__}  transformers {transformers.__version__}")

    ids, mask, tt = make_batch(512, B, S, SEED + 6, 2, LENGTHS)
    labels = torch.tensor(LABELS, dtype=torch.long)
    for i, fam in enumerate(("bert", "distilbert", "albert")):
        make_classifier(fam, a.source_dir, a.outdir, SEED + i, ids, mask, tt, labels)
    make_task_distill(a.source_dir, a.outdir, SEED + 3, ids, mask, tt, labels)
    make_albert("tiny-albert-uneven", a.source_dir, a.outdir, SEED + 4, 5, 2, 1, ids, mask, tt)
    make_albert("tiny-albert-groups2x2", a.source_dir, a.outdir, SEED + 5, 6, 3, 2, ids, mask, tt)
    if not reload_checks(a.outdir, ids, mask, tt):
        sys.exit("reload check FAILED")
    print("all reload checks passed")


if __name__ == "__main__":
    main()
