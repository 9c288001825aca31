"""A 512-token WordPiece vocabulary for the tiny fixture models (V = 512), so the tests can
train them on real English text: the five special tokens, single characters (as words and as
"##" continuations) and the most frequent lowercase words of recipes/data/demo-train.txt.
Writes vocab.txt next to this script. Plain Python, no dependencies.
"""
import collections, os, re, unicodedata

here = os.path.dirname(os.path.abspath(__file__))
text = open(os.path.join(here, "../../../../recipes/data/demo-train.txt"), encoding="utf-8").read().lower()
text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,'\"-();:!?")
tokens = specials + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
words = collections.Counter(w for w in re.findall(r"[a-z]+", text) if len(w) > 1)
for w, _ in words.most_common():
    if len(tokens) >= 512:
        break
    tokens.append(w)
open(os.path.join(here, "vocab.txt"), "w", encoding="utf-8").write("\n".join(tokens) + "\n")
print(len(tokens), "tokens")
