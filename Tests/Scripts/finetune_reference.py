#!/usr/bin/env python3
"""PyTorch + transformers reference for `distill finetune` / recipes/sentiment.toml's teacher stage.

Fine-tunes a Hugging Face encoder folder with BertForSequenceClassification on a TSV of label and
text and prints the dev accuracy after each epoch, with the settings Distillery's fine-tuning uses:
max 64 tokens, batch 32, 3 epochs, AdamW (lr 5e-5, betas 0.9/0.999, eps 1e-8, weight decay 0.01
except on biases and LayerNorm weights), linear warm-up over the first 10% of the steps then
linear decay to 0, gradient norm clipped to 1, dropout on, the new classifier normal(0, 0.02).

--batches random   plain shuffled batches (what a PyTorch DataLoader(shuffle=True) gives)
--batches bucketed Distillery's order: shuffle, sort pools of 50 batches by length, cut them into
                   batches, shuffle the batches (less padding; same examples per epoch)

It is a reference for the *distribution* of the teacher's accuracy (seed to seed), not a fixture:
nothing is compared to it bit for bit.

  python3 Tests/Scripts/finetune_reference.py --model .models/all-MiniLM-L6-v2 \
      --train .data/rt_train.tsv --dev .data/rt_dev.tsv --seed 42 --batches random
"""
import argparse
import csv
import random
import time

import torch
from transformers import AutoTokenizer, BertForSequenceClassification


def read_tsv(path, label, text):
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(r)
        li, ti = header.index(label), header.index(text)
        for row in r:
            rows.append((row[li], row[ti]))
    return rows


def bucketed(lengths, batch, seed, epoch, pool_batches=50):
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch * pool_batches
    out = []
    for s in range(0, len(order), pool):
        chunk = sorted(order[s:s + pool], key=lambda i: (lengths[i], i))
        out.extend(chunk[i:i + batch] for i in range(0, len(chunk), batch))
    rng.shuffle(out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--label", default="label")
    ap.add_argument("--text", default="text")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-len", type=int, default=64)
    ap.add_argument("--batches", choices=["random", "bucketed"], default="random")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    train, dev = read_tsv(a.train, a.label, a.text), read_tsv(a.dev, a.label, a.text)
    labels = sorted({l for l, _ in train})
    index = {l: i for i, l in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(a.model)
    enc = lambda rows: [tok(t, truncation=True, max_length=a.max_seq_len)["input_ids"] for _, t in rows]
    train_ids, dev_ids = enc(train), enc(dev)
    train_y = torch.tensor([index[l] for l, _ in train])
    dev_y = torch.tensor([index[l] for l, _ in dev])

    model = BertForSequenceClassification.from_pretrained(a.model, num_labels=len(labels))
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    per_epoch = (len(train_ids) + a.batch_size - 1) // a.batch_size
    total = per_epoch * a.epochs
    warmup = round(0.1 * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s - 1) / max(1, total - warmup)))

    def collate(ids, idx):
        S = max(len(ids[i]) for i in idx)
        x = torch.full((len(idx), S), tok.pad_token_id)
        m = torch.zeros((len(idx), S), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, :len(ids[i])] = torch.tensor(ids[i])
            m[r, :len(ids[i])] = 1
        return x, m

    def evaluate():
        model.eval()
        right = 0
        with torch.no_grad():
            for s in range(0, len(dev_ids), 64):
                idx = list(range(s, min(len(dev_ids), s + 64)))
                x, m = collate(dev_ids, idx)
                right += (model(input_ids=x, attention_mask=m).logits.argmax(-1) == dev_y[idx]).sum().item()
        model.train()
        return right / len(dev_ids)

    lengths = [len(x) for x in train_ids]
    model.train()
    start = time.time()
    for e in range(a.epochs):
        if a.batches == "random":
            g = torch.Generator().manual_seed(a.seed * 1000 + e)
            order = torch.randperm(len(train_ids), generator=g).tolist()
            batches = [order[i:i + a.batch_size] for i in range(0, len(order), a.batch_size)]
        else:
            batches = bucketed(lengths, a.batch_size, a.seed, e)
        for idx in batches:
            x, m = collate(train_ids, idx)
            loss = torch.nn.functional.cross_entropy(model(input_ids=x, attention_mask=m).logits, train_y[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        print(f"epoch {e + 1}: dev accuracy {100 * evaluate():.2f}%  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
