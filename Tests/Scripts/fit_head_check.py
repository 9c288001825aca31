"""A PyTorch cross-check of `distill fit-head`: fit a BERT MLM head (dense + GELU + LayerNorm +
decoder tied to the frozen word embeddings, plus a bias) on a frozen encoder, then report the
held-out MLM accuracy. Not a reference file: it tells whether a low accuracy is the encoder's or
ours.

    python3 Tests/Scripts/fit_head_check.py .models/all-MiniLM-L6-v2 .data/train.txt .data/heldout.txt [STEPS]
"""
import math, random, sys
import torch, transformers

folder, train_path, heldout_path = sys.argv[1:4]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 100
B, S, lr = 32, 128, 2e-3
torch.manual_seed(0); random.seed(0)
torch.set_num_threads(2)
tok = transformers.BertTokenizerFast.from_pretrained(folder)
enc = transformers.AutoModel.from_pretrained(folder).eval()
for p in enc.parameters(): p.requires_grad_(False)
H, V = enc.config.hidden_size, enc.config.vocab_size
word = enc.embeddings.word_embeddings.weight  # [V×H], frozen
dense, norm = torch.nn.Linear(H, H), torch.nn.LayerNorm(H, eps=enc.config.layer_norm_eps)
bias = torch.nn.Parameter(torch.zeros(V))

def sequences(path):
    out = []
    for line in open(path, encoding="utf-8"):
        ids = tok(line.strip(), truncation=True, max_length=S)["input_ids"]
        if len(ids) > 8: out.append(ids)
    return out

train, heldout = sequences(train_path), sequences(heldout_path)[:320]
counts = torch.ones(V)
for ids in train[:20000]:
    for i in ids: counts[i] += 1
with torch.no_grad(): bias.copy_((counts / counts.sum()).log())  # log-unigram start, as ours

def batch(seqs, rng):
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), tok.pad_token_id); att = torch.zeros((len(seqs), L), dtype=torch.long)
    for b, s in enumerate(seqs): ids[b, :len(s)] = torch.tensor(s); att[b, :len(s)] = 1
    labels = torch.full_like(ids, -100); inp = ids.clone()
    for b, s in enumerate(seqs):
        for i in range(1, len(s) - 1):
            if rng.random() < 0.15:
                labels[b, i] = ids[b, i]; r = rng.random()
                inp[b, i] = tok.mask_token_id if r < 0.8 else (rng.randrange(V) if r < 0.9 else ids[b, i])
    return inp, att, labels

def logits(inp, att):
    with torch.no_grad(): h = enc(input_ids=inp, attention_mask=att).last_hidden_state
    return norm(torch.nn.functional.gelu(dense(h))) @ word.T + bias

opt = torch.optim.AdamW(list(dense.parameters()) + list(norm.parameters()) + [bias], lr=lr, weight_decay=0.0)
rng = random.Random(1)
for step in range(steps):
    for g in opt.param_groups: g["lr"] = lr * min(1.0, (step + 1) / max(1, steps // 20))
    inp, att, labels = batch(rng.sample(train, B), rng)
    loss = torch.nn.functional.cross_entropy(logits(inp, att).view(-1, V), labels.view(-1))
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 20 == 0: print(f"step {step} loss {loss.item():.4f}", flush=True)
rng = random.Random(2); right = total = 0
with torch.no_grad():
    for i in range(0, len(heldout), 32):
        inp, att, labels = batch(heldout[i:i + 32], rng)
        pred = logits(inp, att).argmax(-1); m = labels != -100
        right += (pred[m] == labels[m]).sum().item(); total += m.sum().item()
print(f"held-out MLM accuracy after {steps} steps: {100 * right / total:.2f}% ({total} masked tokens)")
