"""Checks that a folder exported by `distill convert X.safetensors.zst DIR` loads in Hugging Face
transformers and computes what Distillery computes.

    distill convert student.safetensors.zst /tmp/student
    distill forward --model student.safetensors.zst --batch BATCH.safetensors --out /tmp/ours.safetensors
    python3 Tests/Scripts/check_export.py /tmp/student BATCH.safetensors /tmp/ours.safetensors [DIR BATCH OURS …]

Loads DIR with AutoModelForMaskedLM, AutoModelForSequenceClassification (as its config's
architecture says) or AutoModel, checks the class matches the family (BertForMaskedLM,
AlbertForSequenceClassification, …), runs it on the batch and compares every hidden state and
the logits (Distillery's `logits`, or `class_logits` for a classifier) with Distillery's, max
abs difference within --tolerance (1e-4). Exits non-zero on any mismatch. Needs torch,
transformers, safetensors.
"""
import argparse, json, os, sys

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

ap = argparse.ArgumentParser()
ap.add_argument("triples", nargs="+", help="FOLDER BATCH OURS, repeated")
ap.add_argument("--tolerance", type=float, default=1e-4)
a = ap.parse_args()
if len(a.triples) % 3:
    sys.exit("give FOLDER BATCH OURS triples")


def check(folder, batch_path, ours_path):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    arch = (cfg.get("architectures") or [""])[0]
    head = arch.endswith("ForMaskedLM")
    classifier = arch.endswith("ForSequenceClassification")
    Auto = AutoModelForMaskedLM if head else AutoModelForSequenceClassification if classifier else AutoModel
    model = Auto.from_pretrained(folder).eval()
    family = {"bert": "Bert", "albert": "Albert", "distilbert": "DistilBert"}[cfg["model_type"]]
    expected = family + ("ForMaskedLM" if head else "ForSequenceClassification")
    if (head or classifier) and type(model).__name__ != expected:
        return f"{folder}: loaded as {type(model).__name__}, expected {expected}"
    batch = load_file(batch_path)
    kw = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "output_hidden_states": True}
    if "token_type_ids" in batch and cfg["model_type"] != "distilbert":
        kw["token_type_ids"] = batch["token_type_ids"]
    with torch.no_grad():
        out = model(**kw)
    ours = load_file(ours_path)
    names = [f"hidden_states.{i}" for i in range(len(out.hidden_states))] + (["logits"] if head else []) + (["class_logits"] if classifier else [])
    if set(ours) != set(names):
        return f"{folder}: tensor sets differ: ours {sorted(ours)}, transformers {names}"
    worst = 0.0
    for n in names:
        ref = out.logits if n in ("logits", "class_logits") else out.hidden_states[int(n.split(".")[1])]
        worst = max(worst, (ref - ours[n]).abs().max().item())
    if worst > a.tolerance:
        return f"{folder}: FAIL {type(model).__name__}: {worst:.2e} > {a.tolerance}"
    print(f"OK: {folder}: {type(model).__name__} matches within {a.tolerance} (worst {worst:.2e})")
    return None


failures = [f for f in (check(*a.triples[i:i + 3]) for i in range(0, len(a.triples), 3)) if f]
for f in failures:
    print(f)
sys.exit(1 if failures else 0)
