"""Reference numbers for `distill probe`, computed with scikit-learn, PyTorch and transformers
(never with Distillery).

    python3 Tests/Scripts/probe_reference.py            # rewrite the fixtures
    python3 Tests/Scripts/probe_reference.py --check    # recompute, compare, write nothing

Writes, under Tests/DistilleryTests/Fixtures/probe/:

  logistic.json   two small fixed problems for the logistic regression alone (features drawn
                  with numpy, seed 12, rounded to float32 so Swift reads them exactly):
                    "binary"      60 train / 25 test rows, 6 features (one constant), labels {0, 1}, C = 1
                    "multiclass"  90 train / 30 test rows, 5 features (one constant), labels {0, 2, 5}
                                  (not 0..<K: the labels are names), C = 0.3
                    "noise"       70 train / 30 test rows, 6 features: one constant, two at the
                                  level of float noise (std 1e-7 around 0.25, std 1e-30 around 0),
                                  labels {3, 4}, C = 2 (numpy seed 13)
                  each with the pipeline the probe runs -- StandardScaler (population std; a
                  constant feature, or one with std below 1e-6 of the widest one's, gets scale 1:
                  see fit_scaler) then LogisticRegression(C, lbfgs, L2, intercept unpenalised)
                  -- fitted to the optimum (tol 1e-10, max_iter 10000: scikit-learn's
                  default tol 1e-4 stops early) and records classes_, predict_proba on the test
                  rows [n x K], test accuracy and macro-F1, train accuracy, coef_ and intercept_.
                  scikit-learn fits two classes as one binomial vector and three or more as a
                  softmax; both minimise mean(loss) + ||W||^2 / (2 C n).
  train.tsv,      a tiny labelled task (columns label, id, text) made of words the tiny vocabulary
  test.tsv        holds: label 1 sentences carry words from POSITIVE, label 0 from NEGATIVE, both
                  mixed with neutral filler (random.Random(5)); 48 train and 24 test rows.
  cv.json         k-fold cross-validation (`distill probe --folds`): scikit-learn's KFold(k)
                  without shuffling, each fold predicted by the pipeline below fitted on the
                  other folds; per-fold accuracies, then accuracy and macro-F1 over all
                  held-out predictions (cross_val_predict with cv=KFold(k)), and those
                  predictions. "binary" / "binary_7": the logistic.json "binary" training rows,
                  5 folds of 12 and 7 uneven folds; "multiclass": its "multiclass" rows, 5 folds;
                  "tiny_bert_mean" / "tiny_bert_cls": the tiny BERT's mean-pooled and [CLS]
                  train.tsv embeddings from tiny-bert.json, 4 folds; "paired_mean_minus_cls":
                  mean minus cls example by example (`distill compare --probe-folds`'s paired
                  column): the mean of d_i = [mean right] - [cls right] and std(d, ddof=1)/sqrt(n).
  tiny-bert.json  the probe end to end on the tiny BERT fixture (tiny-bert-mlm weights with
                  tiny-vocab/vocab.txt, as Fixtures.makeTinyTeacher assembles it): texts tokenized
                  by transformers' BertTokenizer (lowercase, max_length 64 with truncation), run by
                  BertModel (eager attention, fp32, 1 thread); for pooling "mean" (mean of the last
                  hidden state over attention_mask) and "cls" (its first row): the embeddings of
                  every train and test row, and the probe (StandardScaler + LogisticRegression C = 1
                  as above): test probabilities, test accuracy and macro-F1, train accuracy.

Needs: numpy, scikit-learn, torch, transformers.
"""
import argparse, json, os, random, sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.preprocessing import StandardScaler
from transformers import BertModel, BertTokenizer

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "../DistilleryTests/Fixtures")
out_dir = os.path.join(fixtures, "probe")

ap = argparse.ArgumentParser()
ap.add_argument("--check", action="store_true", help="compare with the stored fixtures, write nothing")
args = ap.parse_args()


def fit_scaler(X):
    """StandardScaler, except that a feature whose std is below 1e-6 of the widest feature's
    (float rounding noise, e.g. all-MiniLM-L6-v2's dimensions at 1e-32) keeps scale 1 instead
    of being blown up to unit size: the rule Distillery's probe applies. Exactly constant
    features get scale 1 either way."""
    scaler = StandardScaler().fit(X)
    scaler.scale_[scaler.scale_ <= 1e-6 * scaler.scale_.max()] = 1.0
    return scaler


def probe(Xtr, ytr, Xte, yte, C):
    scaler = fit_scaler(Xtr)
    lr = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10000)
    lr.fit(scaler.transform(Xtr), ytr)
    proba = lr.predict_proba(scaler.transform(Xte))
    pred = lr.predict(scaler.transform(Xte))
    predicted_test = pred
    train_pred = lr.predict(scaler.transform(Xtr))
    # The fixtures compare predictions exactly: keep clear of ties.
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = float((top2[:, 1] - top2[:, 0]).min())
    assert margin > 1e-3, f"a test row is within {margin} of a tie"
    return {
        "c": C,
        "classes": [int(c) for c in lr.classes_],
        "probabilities": proba.tolist(),
        "test_accuracy": float(accuracy_score(yte, pred)),
        "test_macro_f1": float(f1_score(yte, pred, average="macro")),
        "train_accuracy": float(accuracy_score(ytr, train_pred)),
        "coef": lr.coef_.tolist(),
        "intercept": lr.intercept_.tolist(),
        "iterations": int(lr.n_iter_[0]),
        "smallest_margin": margin,
        "_predicted": predicted_test,
    }


def problem(rng, n_train, n_test, d, classes, C, noise=False):
    K = len(classes)
    centres = rng.normal(0, 1.0, size=(K, d))
    y = rng.integers(0, K, size=n_train + n_test)
    X = centres[y] + rng.normal(0, 1.6, size=(n_train + n_test, d))
    X[:, 2] = 3.0  # a constant feature: standardised to 0 (scale 1), as StandardScaler does
    if noise:
        # Rounding-noise features (std 1e-7 and 1e-30 against ~2): kept at scale 1 by fit_scaler.
        X[:, 0] = 0.25 + rng.normal(0, 1e-7, size=n_train + n_test)
        X[:, 1] = rng.normal(0, 1e-30, size=n_train + n_test)
    X = X.astype(np.float32).astype(np.float64)
    labels = np.array(classes)[y]
    r = probe(X[:n_train], labels[:n_train], X[n_train:], labels[n_train:], C)
    r.update({"train_features": X[:n_train].tolist(), "train_labels": labels[:n_train].tolist(),
              "test_features": X[n_train:].tolist(), "test_labels": labels[n_train:].tolist()})
    return r


rng = np.random.default_rng(12)
logistic = {"binary": problem(rng, 60, 25, 6, [0, 1], 1.0),
            "multiclass": problem(rng, 90, 30, 5, [0, 2, 5], 0.3)}
logistic["noise"] = problem(np.random.default_rng(13), 70, 30, 6, [3, 4], 2.0, noise=True)

# The tiny task: words the 512-token vocabulary holds.
POSITIVE = ["good", "great", "love", "better", "light", "holy", "dear", "well"]
NEGATIVE = ["death", "war", "fire", "night", "against", "nothing", "never", "left"]
FILLER = ["the", "man", "house", "city", "river", "king", "people", "water", "world", "land", "was", "is", "and",
          "of", "in", "with", "by", "a", "his", "her", "their", "old", "young", "day", "time"]
r = random.Random(5)


def sentence(label):
    words = [r.choice(FILLER) for _ in range(r.randint(3, 9))]
    for _ in range(r.randint(1, 2)):
        words.insert(r.randint(0, len(words)), r.choice(POSITIVE if label else NEGATIVE))
    s = " ".join(words)
    return s[0].upper() + s[1:] + r.choice([".", "!", " ..."])


def rows(n, start):
    return [(i % 2 if r.random() < 0.5 else 1 - i % 2, f"s{start + i}") for i in range(n)]


tsv = {}
for name, n, start in [("train", 48, 0), ("test", 24, 100)]:
    lines = ["label\tid\ttext"]
    for label, ident in rows(n, start):
        lines.append(f"{label}\t{ident}\t{sentence(label)}")
    tsv[name] = "\n".join(lines) + "\n"


def read(text):
    body = [l.split("\t") for l in text.splitlines()[1:]]
    return [t for _, _, t in body], np.array([int(l) for l, _, _ in body])


torch.set_num_threads(1)
tok = BertTokenizer(os.path.join(fixtures, "tiny-vocab/vocab.txt"), do_lower_case=True)
model = BertModel.from_pretrained(os.path.join(fixtures, "tiny-bert-mlm"), add_pooling_layer=False,
                                  attn_implementation="eager").eval()


def embed(texts, pooling):
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    if pooling == "cls":
        return h[:, 0].double().numpy()
    m = enc["attention_mask"].unsqueeze(-1).float()
    return ((h * m).sum(1) / m.sum(1)).double().numpy()


train_texts, train_labels = read(tsv["train"])
test_texts, test_labels = read(tsv["test"])
tiny = {"model": "tiny-bert-mlm + tiny-vocab", "max_length": 64}
for pooling in ["mean", "cls"]:
    Etr, Ete = embed(train_texts, pooling), embed(test_texts, pooling)
    p = probe(Etr, train_labels, Ete, test_labels, 1.0)
    p.pop("coef"); p.pop("intercept")
    p.update({"train_embeddings": Etr.tolist(), "test_embeddings": Ete.tolist()})
    tiny[pooling] = p

def cross_validate(X, y, C, k):
    from sklearn.model_selection import KFold
    predicted = np.zeros_like(y)
    folds = []
    for train_rows, test_rows in KFold(n_splits=k).split(X):
        r = probe(X[train_rows], y[train_rows], X[test_rows], y[test_rows], C)
        predicted[test_rows] = r["_predicted"]
        folds.append(r["test_accuracy"])
    return {"folds": k, "c": C, "fold_accuracies": folds, "accuracy": float(accuracy_score(y, predicted)),
            "macro_f1": float(f1_score(y, predicted, average="macro")), "predicted": predicted.tolist()}


for problem_result in logistic.values():
    problem_result.pop("_predicted")
for pooling in ["mean", "cls"]:
    tiny[pooling].pop("_predicted")
b, m = logistic["binary"], logistic["multiclass"]
cv = {"binary": cross_validate(np.array(b["train_features"]), np.array(b["train_labels"]), b["c"], 5),
      "binary_7": cross_validate(np.array(b["train_features"]), np.array(b["train_labels"]), b["c"], 7),
      "multiclass": cross_validate(np.array(m["train_features"]), np.array(m["train_labels"]), m["c"], 5),
      "tiny_bert_mean": cross_validate(np.array(tiny["mean"]["train_embeddings"]), train_labels, 1.0, 4),
      "tiny_bert_cls": cross_validate(np.array(tiny["cls"]["train_embeddings"]), train_labels, 1.0, 4)}
# Two models on the same folds, example by example: d_i = [mean right] - [cls right],
# its mean and the standard error std(d, ddof=1) / sqrt(n).
d = ((np.array(cv["tiny_bert_mean"]["predicted"]) == train_labels).astype(float)
     - (np.array(cv["tiny_bert_cls"]["predicted"]) == train_labels).astype(float))
cv["paired_mean_minus_cls"] = {"difference": float(d.mean()), "standard_error": float(d.std(ddof=1) / np.sqrt(len(d))),
                               "only_first_correct": int((d > 0).sum()), "only_second_correct": int((d < 0).sum())}
for name, r in cv.items():
    if name.startswith("paired"):
        print(f"cv {name}: {r}")
        continue
    print(f"cv {name}: {r['folds']} folds {['%.4f' % a for a in r['fold_accuracies']]}, accuracy {r['accuracy']:.4f}, "
          f"macro-F1 {r['macro_f1']:.4f}")

outputs = {"logistic.json": json.dumps(logistic) + "\n", "train.tsv": tsv["train"], "test.tsv": tsv["test"],
           "tiny-bert.json": json.dumps(tiny) + "\n", "cv.json": json.dumps(cv) + "\n"}
for name in ["binary", "multiclass", "noise"]:
    p = logistic[name]
    print(f"{name}: test accuracy {p['test_accuracy']:.4f}, macro-F1 {p['test_macro_f1']:.4f}, "
          f"train accuracy {p['train_accuracy']:.4f}, {p['iterations']} iterations, margin {p['smallest_margin']:.4f}")
for pooling in ["mean", "cls"]:
    p = tiny[pooling]
    print(f"tiny-bert {pooling}: test accuracy {p['test_accuracy']:.4f}, macro-F1 {p['test_macro_f1']:.4f}, "
          f"train accuracy {p['train_accuracy']:.4f}, margin {p['smallest_margin']:.4f}")

if args.check:
    bad = 0
    for name, text in outputs.items():
        path = os.path.join(out_dir, name)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if name.endswith(".tsv"):
            same = old == text
        else:
            # Numbers may move in the last digits between library versions.
            a, b = json.loads(text), json.loads(old) if old else None

            def close(x, y):
                if isinstance(x, dict):
                    return isinstance(y, dict) and x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
                if isinstance(x, list):
                    return isinstance(y, list) and len(x) == len(y) and all(close(u, v) for u, v in zip(x, y))
                if isinstance(x, float) or isinstance(y, float):
                    return abs(x - y) <= 1e-6 * max(1.0, abs(x))
                return x == y

            same = b is not None and close({k: v for k, v in a.items() if k != "iterations"},
                                           {k: v for k, v in b.items() if k != "iterations"})
        print(("same   " if same else "DIFFERS ") + name)
        bad += not same
    sys.exit(1 if bad else 0)

os.makedirs(out_dir, exist_ok=True)
for name, text in outputs.items():
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
        f.write(text)
print("wrote", out_dir)
