"""Cross-checks `distill params` against transformers on random configs of every family it counts.

    swift build && python3 Tests/Scripts/param_counts_crosscheck.py [--distill .build/debug/distill] [--seed N] [--rounds R]

counts.json (param_counts.py) holds the published models; this script covers the rest of each
family's config space: for random small configs of bert, distilbert, albert, roberta, electra,
xlnet, deberta, deberta-v2, xlm, bart, t5, gpt2 and openai-gpt (factorized embeddings, DeBERTa's
attention options, untied heads, gated T5 FFNs, XLM languages, ...) it builds the base and the
LM class on the meta device and compares sum(p.numel() for p in model.parameters()) with what
`distill params CONFIG.json:base` / `:mlm` reports. Writes the configs to a temporary folder;
exits non-zero on any difference. Needs torch and transformers (written against 5.24).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import torch
import transformers

CLASSES = {
    "bert": ("BertModel", "BertForMaskedLM"), "distilbert": ("DistilBertModel", "DistilBertForMaskedLM"),
    "albert": ("AlbertModel", "AlbertForMaskedLM"), "roberta": ("RobertaModel", "RobertaForMaskedLM"),
    "electra": ("ElectraModel", "ElectraForMaskedLM"), "xlnet": ("XLNetModel", "XLNetLMHeadModel"),
    "deberta": ("DebertaModel", "DebertaForMaskedLM"), "deberta-v2": ("DebertaV2Model", "DebertaV2ForMaskedLM"),
    "xlm": ("XLMModel", "XLMWithLMHeadModel"), "bart": ("BartModel", "BartForConditionalGeneration"),
    "t5": ("T5Model", "T5ForConditionalGeneration"), "gpt2": ("GPT2Model", "GPT2LMHeadModel"),
    "openai-gpt": ("OpenAIGPTModel", "OpenAIGPTLMHeadModel"),
}


def random_config(mt, r):
    h = r.choice([2, 3, 4]) * 8
    heads = r.choice([1, 2, 4, 8])
    while h % heads:
        heads //= 2
    c = {"model_type": mt}
    V, P = r.randint(50, 300), r.randint(8, 600)
    if mt in ("bert", "albert", "roberta", "electra", "deberta", "deberta-v2"):
        c.update(vocab_size=V, hidden_size=h, num_hidden_layers=r.randint(1, 4), num_attention_heads=heads,
                 intermediate_size=r.randint(8, 80), max_position_embeddings=P,
                 type_vocab_size=r.randint(1, 3) if mt in ("bert", "albert", "roberta", "electra") else r.randint(0, 3))
        if mt in ("electra", "albert"):
            c["embedding_size"] = r.choice([h, 8, 16, 40])
        if mt == "albert":
            c["num_hidden_groups"] = 1
        if mt.startswith("deberta"):
            c.update(relative_attention=r.random() < .8, max_relative_positions=r.choice([-1, 5, 64]),
                     position_biased_input=r.random() < .5, pos_att_type=r.choice(["c2p|p2c", "c2p", "p2c", "", ["p2c", "c2p"]]),
                     legacy=r.random() < .7)
            if r.random() < .3:
                c["embedding_size"] = r.choice([8, 16])
            if mt == "deberta-v2":
                c.update(position_buckets=r.choice([-1, 16, 256]), norm_rel_ebd=r.choice(["layer_norm", "none"]),
                         share_att_key=r.random() < .5)
    elif mt == "distilbert":
        c.update(vocab_size=V, dim=h, n_layers=r.randint(1, 4), n_heads=heads, hidden_dim=r.randint(8, 80), max_position_embeddings=P)
    elif mt == "xlnet":
        c.update(vocab_size=V, d_model=h, n_layer=r.randint(1, 4), n_head=heads, d_inner=r.randint(8, 80))
    elif mt == "xlm":
        c.update(vocab_size=V, emb_dim=h, n_layers=r.randint(1, 4), n_heads=heads, max_position_embeddings=P,
                 n_langs=r.choice([1, 3]), use_lang_emb=r.random() < .7)
    elif mt == "bart":
        c.update(vocab_size=V, d_model=h, encoder_layers=r.randint(1, 4), decoder_layers=r.randint(1, 4),
                 encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=r.randint(8, 80),
                 decoder_ffn_dim=r.randint(8, 80), max_position_embeddings=P, tie_word_embeddings=r.random() < .7)
    elif mt == "t5":
        c.update(vocab_size=V, d_model=h, d_kv=r.randint(2, 16), d_ff=r.randint(8, 80), num_layers=r.randint(1, 4),
                 num_decoder_layers=r.randint(1, 4), num_heads=r.randint(1, 6), relative_attention_num_buckets=r.randint(1, 40),
                 feed_forward_proj=r.choice(["relu", "gated-gelu", "gelu"]), tie_word_embeddings=r.random() < .6)
    else:  # gpt2, openai-gpt
        c.update(vocab_size=V, n_embd=h, n_layer=r.randint(1, 4), n_head=heads, n_positions=P)
        if mt == "gpt2" and r.random() < .5:
            c["n_inner"] = r.randint(8, 80)
    if mt not in ("bart", "t5", "bert", "albert", "distilbert") and r.random() < .2:
        c["tie_word_embeddings"] = False
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--distill", default=os.path.join(os.path.dirname(__file__), "..", "..", ".build", "debug", "distill"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    r = random.Random(a.seed)
    out = tempfile.mkdtemp(prefix="param-crosscheck-")
    args, expected = [], []
    for i in range(a.rounds):
        for mt, classes in CLASSES.items():
            c = random_config(mt, r)
            path = os.path.join(out, f"{i}-{mt}.json")
            with open(path, "w") as f:
                json.dump(c, f)
            config = transformers.AutoConfig.for_model(mt, **{k: v for k, v in c.items() if k != "model_type"})
            for suffix, cls in zip((":base", ":mlm"), classes):
                with torch.device("meta"):
                    model = getattr(transformers, cls)(config)
                args.append(path + suffix)
                expected.append((sum(p.numel() for p in model.parameters()), c))
    run = subprocess.run([a.distill, "params", *args, "--json"], capture_output=True, text=True)
    if run.returncode:
        sys.exit(run.stderr)
    bad = 0
    for arg, (want, c), got in zip(args, expected, json.loads(run.stdout)["models"]):
        if got["total"] != want:
            bad += 1
            print(f"DIFFERS {arg}: transformers {want}, distill {got['total']} ({got['total'] - want:+}): {json.dumps(c)}")
    print(f"{len(args)} configs, {bad} differ (transformers {transformers.__version__})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
