"""Reference token ids for a sample of real text, made once with Hugging Face's tokenizers
(never with Distillery).

    .ci/fetch-teacher
    python3 Tests/DistilleryTests/Fixtures/tokenizer/make_train_sample.py ../shared/data/train.txt

Takes every 27th line of train.txt (about 2,500 lines across all its sources) that is at most
2,000 characters long, tokenizes it with transformers' AutoTokenizer loaded from the
all-MiniLM-L6-v2 folder (BERT uncased; its vocab.txt is this folder's, as for cases.jsonl)
and checks the ids against tokenizers' BertWordPieceTokenizer over this folder's vocab.txt. Writes train_sample.jsonl: {"text", "input_ids"} per line, with [CLS]
and [SEP], no truncation. Needs: transformers, tokenizers.
"""
import json, os, sys

import tokenizers
from transformers import AutoTokenizer

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1]
vocab = os.path.join(here, "vocab.txt")
repo = os.path.abspath(os.path.join(here, "../../../.."))
tok = AutoTokenizer.from_pretrained(os.environ.get("MINILM", os.path.join(repo, ".models/all-MiniLM-L6-v2")))
check = tokenizers.BertWordPieceTokenizer(vocab, lowercase=True)
with open(src, encoding="utf-8", errors="replace") as f:
    lines = f.read().split("\n")
sample = [l for i, l in enumerate(lines) if i % 27 == 0 and 0 < len(l) <= 2000]
n = 0
with open(os.path.join(here, "train_sample.jsonl"), "w", encoding="utf-8") as out:
    for text in sample:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        assert ids == check.encode(text).ids, text
        out.write(json.dumps({"text": text, "input_ids": ids}, ensure_ascii=False) + "\n")
        n += 1
print("wrote", n, "lines")
