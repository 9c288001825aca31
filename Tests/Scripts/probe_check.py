"""The probe `distill probe` runs, computed with transformers + scikit-learn on a Hugging Face
folder, to compare its numbers at full scale (the fixtures check small cases exactly; see
probe_reference.py).

    python3 Tests/Scripts/probe_check.py MODEL_DIR TRAIN.tsv TEST.tsv [--pooling mean|cls] [--c 1.0]
            [--label label] [--text text] [--max-length 128] [--json]

Tokenizes with the folder's tokenizer (truncation to --max-length), runs AutoModel in fp32 on one
CPU thread per core, pools the last hidden state (mean over attention_mask, or the [CLS] row),
standardises with the training split (StandardScaler, except that features whose std is below
1e-6 of the widest one's -- float rounding noise -- keep scale 1, as Distillery's probe does;
--plain-scaler leaves them to StandardScaler) and fits LogisticRegression(C, lbfgs) to the
optimum (tol 1e-10, max_iter 10000). Prints test accuracy, test macro-F1 and train accuracy.
Needs: torch, transformers, scikit-learn, numpy.
"""
import argparse, csv, json, sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.preprocessing import StandardScaler
from transformers import AutoModel, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("train")
ap.add_argument("test")
ap.add_argument("--pooling", choices=["mean", "cls"], default="mean")
ap.add_argument("--c", type=float, default=1.0)
ap.add_argument("--label", default="label")
ap.add_argument("--text", default="text")
ap.add_argument("--max-length", type=int, default=128)
ap.add_argument("--batch-size", type=int, default=64)
ap.add_argument("--plain-scaler", action="store_true", help="StandardScaler as it is (noise features blown up)")
ap.add_argument("--json", action="store_true")
a = ap.parse_args()


def read(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    li = header.index(a.label) if a.label in header else int(a.label)
    ti = header.index(a.text) if a.text in header else int(a.text)
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    return [r[ti] for r in body], np.array([int(r[li]) for r in body])


tok = AutoTokenizer.from_pretrained(a.model)
model = AutoModel.from_pretrained(a.model).eval()
limit = min(a.max_length, model.config.max_position_embeddings)


def embed(texts):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), a.batch_size):
            enc = tok(texts[i:i + a.batch_size], padding=True, truncation=True, max_length=limit, return_tensors="pt")
            h = model(**enc).last_hidden_state
            if a.pooling == "cls":
                out.append(h[:, 0].double().numpy())
            else:
                m = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((h * m).sum(1) / m.sum(1)).double().numpy())
    return np.concatenate(out)


train_texts, ytr = read(a.train)
test_texts, yte = read(a.test)
Xtr, Xte = embed(train_texts), embed(test_texts)
scaler = StandardScaler().fit(Xtr)
noise = scaler.scale_ <= 1e-6 * scaler.scale_.max()
if not a.plain_scaler:
    scaler.scale_[noise] = 1.0
lr = LogisticRegression(C=a.c, solver="lbfgs", tol=1e-10, max_iter=10000).fit(scaler.transform(Xtr), ytr)
pred = lr.predict(scaler.transform(Xte))
result = {"test_accuracy": accuracy_score(yte, pred), "test_macro_f1": f1_score(yte, pred, average="macro"),
          "train_accuracy": accuracy_score(ytr, lr.predict(scaler.transform(Xtr))),
          "train_examples": len(ytr), "test_examples": len(yte), "dimensions": Xtr.shape[1],
          "noise_features": int(noise.sum()), "iterations": int(lr.n_iter_[0])}
if a.json:
    print(json.dumps(result, indent=1))
else:
    for k, v in result.items():
        print(f"{k:16} {v:.4f}" if isinstance(v, float) else f"{k:16} {v}")
