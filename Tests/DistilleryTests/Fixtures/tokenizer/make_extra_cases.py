"""More tokenizer cases, made once with transformers' fast BERT tokenizer (never Distillery):
scripts and characters cases.jsonl does not cover. Writes extra_cases.jsonl in the format of
cases.jsonl. Needs transformers and the all-MiniLM-L6-v2 folder (.ci/fetch-teacher).
"""
import json, os

from transformers import AutoTokenizer

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.abspath(os.path.join(here, "../../../.."))
tok = AutoTokenizer.from_pretrained(os.environ.get("MINILM", os.path.join(repo, ".models/all-MiniLM-L6-v2")))
TEXTS = [
    "Pre-training uses unlabeled corpora; fine-tuning uses labeled data.",
    "ALBERT's factorized embedding: V×E + E×H instead of V×H.",
    "Ḿúltíplé áccénts ôn ëvérÿ lëttër",
    "Здравствуйте, как дела?",
    "日本語のテキストと한국어 텍스트",
    "zero\u200bwidth\u200cjoiners\u200d and soft\u00adhyphen",
    "control\x07chars\x1bhere and\x00nul \ufffd replacement",
    "ﬁ ligature and ｆｕｌｌｗｉｄｔｈ",
    "x" * 99 + " " + "y" * 101,
    "The 1960s-era GPU-accelerated, state-of-the-art model's weights.",
    "İstanbul ΣΊΣΥΦΟΣ Straße ǅemal ﬃ",
    "no\u00a0break\u2003em\u3000ideographic\u2028line\u0085nel spaces",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𠀀 cjk-ext-b 😀👍🏽",
    "foo[MASK]bar [SEP][CLS] [cls] [UNK]x [PAD]",
    "Ελληνικά, עברית, العربية, हिन्दी",
    "\u0301leading combining mark",
    "tab\tsep\u000bvtab\u000cff",
]
PAIRS = [
    ("short", "a much longer second sentence that will need to be cut down to size"),
    ("one two three four five six seven eight nine ten eleven twelve", "thirteen fourteen fifteen sixteen seventeen eighteen"),
    ("equal length sentence number one here", "equal length sentence number two here"),
]
with open(os.path.join(here, "extra_cases.jsonl"), "w", encoding="utf-8") as f:
    for t in TEXTS:
        enc = tok(t, add_special_tokens=True)
        f.write(json.dumps({"text": t, "input_ids": enc["input_ids"],
                            "tokens": tok.convert_ids_to_tokens(enc["input_ids"])}, ensure_ascii=False) + "\n")
    for t1, t2 in PAIRS:
        for m in (8, 13, 16):
            enc = tok(t1, t2, add_special_tokens=True, truncation=True, max_length=m)
            f.write(json.dumps({"text": t1, "text_pair": t2, "max_length": m, "input_ids": enc["input_ids"],
                                "token_type_ids": enc["token_type_ids"]}, ensure_ascii=False) + "\n")
        enc = tok(t1 + " " + t2, add_special_tokens=True, truncation=True, max_length=10)
        f.write(json.dumps({"text": t1 + " " + t2, "max_length": 10, "input_ids": enc["input_ids"],
                            "token_type_ids": enc["token_type_ids"]}, ensure_ascii=False) + "\n")
print("ok")
