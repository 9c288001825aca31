"""Reference parameter counts, by component, for `distill params`.

    python3 Tests/Scripts/param_counts.py            # rewrite the fixtures
    python3 Tests/Scripts/param_counts.py --check    # recompute, compare with counts.json, write nothing

For every model below the script builds the config explicitly (the count-relevant values of the
model's published config.json, plus model_type and architectures; nothing is downloaded),
instantiates the *base* class on the meta device (`with torch.device("meta"):`, so even t5-11b
costs no memory) and records

  * total = sum(p.numel() for p in model.parameters()) -- parameters() yields a tied / shared
    tensor once, so this is the number transformers reports (e.g. BART's and T5's `shared`
    embedding, which encoder.embed_tokens and decoder.embed_tokens point at, counts once);
  * a breakdown by component from named_parameters(), each tensor assigned by the first rule of
    RULES that matches its name (the table below says, pattern by pattern, where it goes);
  * non_embedding = total minus the lookup tables (see LOOKUP below), the "N" of Kaplan et al.
    that FLOP estimates use (~6*N per token for training).

Writes, under Tests/DistilleryTests/Fixtures/param-counts/:

  configs/<name with / replaced by __>.json   the config each count was built from
  counts.json                                  the table (models + the GPT-3 family)

Seq2seq models (BART, T5) also get "encoder" / "decoder" / "shared" sub-breakdowns: the shared
token embedding (`shared.weight`) is counted once, under "shared" (and under
components.embeddings.word of the whole model), never inside encoder or decoder.

The GPT-3 family (Brown et al. 2020, "Language Models are Few-Shot Learners", Table 2.1) has no
published config.json; for it the script computes the count of a GPT-2-style model with the
paper's dimensions (learned positions over 2048 tokens, vocab 50257, FFN 4*d_model, biases
everywhere, pre-LN blocks + final LayerNorm, LM head tied to the token embedding) and compares it
with the paper's rounded n_params.

Needs torch and transformers (written against transformers 5.24 / torch 2.15).
"""
import argparse
import json
import os
import re
import sys
from collections import OrderedDict

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "DistilleryTests", "Fixtures", "param-counts"))

# ---------------------------------------------------------------------------------------------
# Where each tensor goes.  First match wins; patterns are searched (re.search) in the full
# parameter name as named_parameters() gives it for the *base* class.
#   (pattern, component, sub-component, lookup?)
# component is one of embeddings / attention / ffn / layer_norm / pooler.
# lookup=True marks embedding *tables* (gathered, not multiplied): they are what
# non_embedding leaves out.  The embedding-side projections (ALBERT, ELECTRA) are matmuls applied
# to every token, so they are listed under embeddings but stay in non_embedding.
# ---------------------------------------------------------------------------------------------
RULES = [
    # --- embedding tables ---------------------------------------------------------------------
    (r"(^|\.)word_embeddings\.weight$", "embeddings", "word", True),        # BERT ALBERT RoBERTa ELECTRA DistilBERT DeBERTa(-v2)
    (r"^word_embedding\.weight$", "embeddings", "word", True),              # XLNet
    (r"^embeddings\.weight$", "embeddings", "word", True),                  # XLM
    (r"^shared\.weight$", "embeddings", "word", True),                      # BART, T5 (= encoder/decoder.embed_tokens, tied)
    (r"(^|\.)embed_tokens\.weight$", "embeddings", "word", True),           # (only if untied; never for BART/T5 base classes)
    (r"^(wte|tokens_embed)\.weight$", "embeddings", "word", True),          # GPT-2, GPT
    (r"(^|\.)position_embeddings\.weight$", "embeddings", "position", True),  # BERT-likes, DistilBERT, XLM
    (r"(^|\.)embed_positions\.weight$", "embeddings", "position", True),    # BART (max_position_embeddings + 2 rows: offset 2)
    (r"^(wpe|positions_embed)\.weight$", "embeddings", "position", True),   # GPT-2, GPT
    (r"(^|\.)token_type_embeddings\.weight$", "embeddings", "token_type", True),  # BERT-likes (RoBERTa: 1 row)
    (r"(^|\.)lang_embeddings\.weight$", "embeddings", "language", True),    # XLM (only when n_langs > 1 and use_lang_emb)
    (r"^mask_emb$", "embeddings", "mask_emb", True),                        # XLNet (1 x 1 x d_model)
    (r"(^|\.)rel_embeddings\.weight$", "embeddings", "relative_position", True),  # DeBERTa / DeBERTa-v2 (encoder.rel_embeddings)
    (r"relative_attention_bias\.weight$", "embeddings", "relative_position", True),  # T5 (block 0 of each stack: buckets x heads)
    # --- embedding-side projections (matmuls) -------------------------------------------------
    (r"embedding_hidden_mapping_in\.(weight|bias)$", "embeddings", "projection", False),  # ALBERT E -> H
    (r"^embeddings_project\.(weight|bias)$", "embeddings", "projection", False),          # ELECTRA E -> H (E != H only)
    (r"^embeddings\.embed_proj\.(weight|bias)$", "embeddings", "projection", False),      # DeBERTa-v2 (embedding_size != hidden only)
    # --- layer norms (all norm weights and biases, wherever they sit) -------------------------
    (r"(LayerNorm|layer_norm|layernorm)\w*(\.\d+)?\.(weight|bias)$", "layer_norm", "norm", False),
    #   BERT-likes embeddings.LayerNorm + attention.output.LayerNorm + output.LayerNorm; ALBERT
    #   attention.LayerNorm + full_layer_layer_norm; DistilBERT sa_layer_norm / output_layer_norm;
    #   XLM layer_norm_emb, layer_norm1.N, layer_norm2.N; XLNet rel_attn.layer_norm, ff.layer_norm;
    #   DeBERTa-v2 encoder.LayerNorm (norm_rel_ebd = layer_norm of the relative embeddings);
    #   BART layernorm_embedding, self_attn_layer_norm, encoder_attn_layer_norm, final_layer_norm;
    #   T5 layer.N.layer_norm (RMSNorm, weight only), final_layer_norm
    (r"(^|\.)ln_(\d+|f)\.(weight|bias)$", "layer_norm", "norm", False),    # GPT-2 ln_1 ln_2 ln_f, GPT ln_1 ln_2
    # --- pooler / heads -----------------------------------------------------------------------
    (r"^pooler\.", "pooler", "pooler", False),                              # BERT RoBERTa (pooler.dense), ALBERT (pooler)
    # --- attention ----------------------------------------------------------------------------
    (r"attention\.self\.(query|key|value)\.(weight|bias)$", "attention", "qkv", False),         # BERT RoBERTa ELECTRA
    (r"attention\.output\.dense\.(weight|bias)$", "attention", "out", False),                   # BERT RoBERTa ELECTRA DeBERTa(-v2)
    (r"\.attention\.(query|key|value)\.(weight|bias)$", "attention", "qkv", False),             # ALBERT
    (r"\.attention\.dense\.(weight|bias)$", "attention", "out", False),                         # ALBERT
    (r"(attention|attentions\.\d+)\.(q_lin|k_lin|v_lin)\.(weight|bias)$", "attention", "qkv", False),  # DistilBERT, XLM
    (r"(attention|attentions\.\d+)\.out_lin\.(weight|bias)$", "attention", "out", False),       # DistilBERT, XLM
    (r"attention\.self\.(in_proj\.weight|q_bias|v_bias)$", "attention", "qkv", False),          # DeBERTa v1 (fused QKV, no bias; separate q/v bias)
    (r"attention\.self\.(pos_proj|pos_q_proj)\.(weight|bias)$", "attention", "relative_position", False),  # DeBERTa v1 c2p / p2c
    (r"attention\.self\.(query_proj|key_proj|value_proj)\.(weight|bias)$", "attention", "qkv", False),     # DeBERTa-v2
    (r"attention\.self\.(pos_key_proj|pos_query_proj)\.(weight|bias)$", "attention", "relative_position", False),  # DeBERTa-v2 when share_att_key is false
    (r"rel_attn\.(q|k|v)$", "attention", "qkv", False),                                         # XLNet (d_model x n_head x d_head)
    (r"rel_attn\.o$", "attention", "out", False),                                               # XLNet
    (r"rel_attn\.(r|r_r_bias|r_w_bias)$", "attention", "relative_position", False),             # XLNet positional projection + u/v biases
    (r"rel_attn\.(r_s_bias|seg_embed)$", "attention", "relative_segment", False),               # XLNet relative segment encoding (2 x n_head x d_head per layer)
    (r"(self_attn|encoder_attn)\.(q_proj|k_proj|v_proj)\.(weight|bias)$", "attention", "qkv", False),  # BART (encoder_attn = cross-attention)
    (r"(self_attn|encoder_attn)\.out_proj\.(weight|bias)$", "attention", "out", False),         # BART
    (r"(SelfAttention|EncDecAttention)\.(q|k|v)\.weight$", "attention", "qkv", False),          # T5 (no biases)
    (r"(SelfAttention|EncDecAttention)\.o\.weight$", "attention", "out", False),                # T5
    (r"(^|\.)attn\.c_attn\.(weight|bias)$", "attention", "qkv", False),                         # GPT-2, GPT (fused Conv1D)
    (r"(^|\.)attn\.c_proj\.(weight|bias)$", "attention", "out", False),                         # GPT-2, GPT
    # --- feed-forward -------------------------------------------------------------------------
    (r"intermediate\.dense\.(weight|bias)$", "ffn", "in", False),           # BERT RoBERTa ELECTRA DeBERTa(-v2)
    (r"(^|\.)output\.dense\.(weight|bias)$", "ffn", "out", False),          # idem (attention.output.dense matched above)
    (r"\.ffn\.(weight|bias)$", "ffn", "in", False),                         # ALBERT
    (r"\.ffn_output\.(weight|bias)$", "ffn", "out", False),                 # ALBERT
    (r"ffns?(\.\d+)?\.lin1\.(weight|bias)$", "ffn", "in", False),           # DistilBERT ffn.lin1, XLM ffns.N.lin1
    (r"ffns?(\.\d+)?\.lin2\.(weight|bias)$", "ffn", "out", False),          # DistilBERT, XLM
    (r"ff\.layer_1\.(weight|bias)$", "ffn", "in", False),                   # XLNet
    (r"ff\.layer_2\.(weight|bias)$", "ffn", "out", False),                  # XLNet
    (r"\.fc1\.(weight|bias)$", "ffn", "in", False),                         # BART
    (r"\.fc2\.(weight|bias)$", "ffn", "out", False),                        # BART
    (r"DenseReluDense\.(wi|wi_0|wi_1)\.weight$", "ffn", "in", False),       # T5 (wi_0/wi_1 for gated variants)
    (r"DenseReluDense\.wo\.weight$", "ffn", "out", False),                  # T5
    (r"(^|\.)mlp\.c_fc\.(weight|bias)$", "ffn", "in", False),               # GPT-2, GPT
    (r"(^|\.)mlp\.c_proj\.(weight|bias)$", "ffn", "out", False),            # GPT-2, GPT
]
_RULES = [(re.compile(p), c, s, lk) for p, c, s, lk in RULES]
COMPONENTS = ["embeddings", "attention", "ffn", "layer_norm", "pooler"]
LOOKUP = sorted({s for _, c, s, lk in RULES if lk})


def classify(name):
    for rx, comp, sub, lookup in _RULES:
        if rx.search(name):
            return comp, sub, lookup, rx.pattern
    raise SystemExit(f"no rule for parameter {name!r}: add one to RULES")


# ---------------------------------------------------------------------------------------------
# The models.  "config" holds exactly the published config.json fields that change the count
# (and the head counts the classes need to build), plus model_type and architectures as
# published.  Everything else is left at the config class' default; where a default matters it
# is said in "notes".  "confirmed" says where the values were checked.
# ---------------------------------------------------------------------------------------------
KERAS = "keras-team/keras-hub keras_hub/src/models"
PADDLE = "PaddlePaddle/PaddleNLP paddlenlp/transformers"


def bert(arch, V, H, L, A, I, P=512, T=2, model_type="bert"):
    return OrderedDict(architectures=[arch], model_type=model_type, vocab_size=V, hidden_size=H,
                       num_hidden_layers=L, num_attention_heads=A, intermediate_size=I,
                       max_position_embeddings=P, type_vocab_size=T)


def albert(H, L, A, I):
    c = bert("AlbertForMaskedLM", 30000, H, L, A, I, model_type="albert")
    c.update(embedding_size=128, num_hidden_groups=1, inner_group_num=1)
    return c


def electra(arch, E, H, L, A, I):
    c = bert(arch, 30522, H, L, A, I, model_type="electra")
    c["embedding_size"] = E
    return c


def deberta(H, L, A, I):
    return OrderedDict(architectures=None, model_type="deberta", vocab_size=50265, hidden_size=H,
                       num_hidden_layers=L, num_attention_heads=A, intermediate_size=I,
                       max_position_embeddings=512, type_vocab_size=0, relative_attention=True,
                       max_relative_positions=-1, position_biased_input=False, pos_att_type="c2p|p2c")


def deberta_v3(H, L, A, I):
    return OrderedDict(architectures=None, model_type="deberta-v2", vocab_size=128100, hidden_size=H,
                       num_hidden_layers=L, num_attention_heads=A, intermediate_size=I,
                       max_position_embeddings=512, type_vocab_size=0, relative_attention=True,
                       max_relative_positions=-1, position_biased_input=False, pos_att_type="p2c|c2p",
                       position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True)


def bart(D, L, A, F):
    return OrderedDict(architectures=["BartModel"], model_type="bart", vocab_size=50265, d_model=D,
                       encoder_layers=L, decoder_layers=L, encoder_attention_heads=A, decoder_attention_heads=A,
                       encoder_ffn_dim=F, decoder_ffn_dim=F, max_position_embeddings=1024)


def t5(arch, D, KV, FF, L, A):
    return OrderedDict(architectures=[arch], model_type="t5", vocab_size=32128, d_model=D, d_kv=KV, d_ff=FF,
                       num_layers=L, num_heads=A, relative_attention_num_buckets=32)


def gpt2(D, L, A):
    return OrderedDict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=50257,
                       n_positions=1024, n_embd=D, n_layer=L, n_head=A)


def xlnet(D, L, A, I):
    return OrderedDict(architectures=["XLNetLMHeadModel"], model_type="xlnet", vocab_size=32000, d_model=D,
                       n_layer=L, n_head=A, d_head=D // A, d_inner=I)


MODELS = [
    dict(name="bert-base-uncased", cls="BertModel",
         config=bert("BertForMaskedLM", 30522, 768, 12, 12, 3072),
         confirmed="bert-base-uncased config.json as quoted verbatim in GitHub copies (e.g. a torchKQI "
                   "benchmark script's bert_base_uncased dict); total = keras-hub bert_presets.py "
                   "bert_base_en_uncased params 109,482,240 (pooler included in both)"),
    dict(name="bert-large-uncased", cls="BertModel",
         config=bert("BertForMaskedLM", 30522, 1024, 24, 16, 4096),
         confirmed="bert-large-uncased config.json as quoted in the same GitHub copy; total = keras-hub "
                   "bert_presets.py bert_large_en_uncased params 335,141,888"),
    dict(name="distilbert-base-uncased", cls="DistilBertModel",
         config=OrderedDict(architectures=["DistilBertForMaskedLM"], model_type="distilbert", vocab_size=30522,
                            dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512),
         notes="sinusoidal_pos_embds (false) and tie_weights_ (true) are published but do not change the count: "
               "the position table is an nn.Embedding either way, and the base class has no LM head.",
         confirmed="distilbert-base-uncased config.json values (dim 768, hidden_dim 3072, n_layers 6, vocab 30522, "
                   "512 positions) as mirrored in GitHub ports (e.g. AbrJA/Transformers.jl DistilBert config); total = "
                   f"{KERAS}/distil_bert/distil_bert_presets.py distil_bert_base_en_uncased params 66,362,880"),
    dict(name="albert-base-v2", cls="AlbertModel", config=albert(768, 12, 12, 3072),
         confirmed=f"{PADDLE}/albert/configuration.py (albert-base-v2 entry, mirrors the HF config); total = "
                   f"{KERAS}/albert/albert_presets.py albert_base_en_uncased params 11,683,584"),
    dict(name="albert-large-v2", cls="AlbertModel", config=albert(1024, 24, 16, 4096),
         confirmed=f"{PADDLE}/albert/configuration.py (albert-large-v2); total = keras-hub albert_large_en_uncased 17,683,968"),
    dict(name="albert-xlarge-v2", cls="AlbertModel", config=albert(2048, 24, 16, 8192),
         confirmed=f"{PADDLE}/albert/configuration.py (albert-xlarge-v2); total = keras-hub albert_extra_large_en_uncased 58,724,864"),
    dict(name="albert-xxlarge-v2", cls="AlbertModel", config=albert(4096, 12, 64, 16384),
         confirmed=f"{PADDLE}/albert/configuration.py (albert-xxlarge-v2); total = keras-hub albert_extra_extra_large_en_uncased 222,595,584"),
    dict(name="sentence-transformers/all-MiniLM-L6-v2", cls="BertModel",
         config=bert("BertModel", 30522, 384, 6, 12, 1536),
         confirmed="the model's own config.json (this checkout's gitignored .models/all-MiniLM-L6-v2/config.json, "
                   "from the Hugging Face repo); total also equals the numel of its model.safetensors"),
    dict(name="roberta-base", cls="RobertaModel", config=bert("RobertaForMaskedLM", 50265, 768, 12, 12, 3072, P=514, T=1,
                                                              model_type="roberta"),
         notes="max_position_embeddings 514 = 512 + padding_idx 1 + 1; type_vocab_size 1; RobertaModel keeps "
               "add_pooling_layer=True by default, so the pooler is counted.",
         confirmed="roberta-base config.json as quoted in GitHub copies (e.g. Softcatala/julibert model_config.py and a "
                   "printed RobertaConfig); keras-hub roberta_base_en params 124,052,736 = this total minus pooler, "
                   "token-type row and the 2 extra position rows"),
    dict(name="roberta-large", cls="RobertaModel", config=bert("RobertaForMaskedLM", 50265, 1024, 24, 16, 4096, P=514, T=1,
                                                               model_type="roberta"),
         confirmed="roberta-large config.json as printed (RobertaConfig dump) in a GitHub copy; keras-hub "
                   "roberta_large_en params 354,307,072 = this total minus pooler, token-type row and 2 position rows"),
    dict(name="google/electra-small-discriminator", cls="ElectraModel",
         config=electra("ElectraForPreTraining", 128, 256, 12, 4, 1024),
         confirmed=f"{PADDLE}/electra/configuration.py (electra-small-discriminator); keras-hub electra_presets.py "
                   "13,548,800 = this total + a 256x256 pooler that ElectraModel does not have"),
    dict(name="google/electra-base-discriminator", cls="ElectraModel",
         config=electra("ElectraForPreTraining", 768, 768, 12, 12, 3072),
         notes="embedding_size == hidden_size, so ElectraModel has no embeddings_project.",
         confirmed=f"{PADDLE}/electra/configuration.py (electra-base-discriminator); keras-hub 109,482,240 = this total + pooler"),
    dict(name="google/electra-large-discriminator", cls="ElectraModel",
         config=electra("ElectraForPreTraining", 1024, 1024, 24, 16, 4096),
         notes="embedding_size == hidden_size, so ElectraModel has no embeddings_project.",
         confirmed=f"{PADDLE}/electra/configuration.py (electra-large-discriminator); keras-hub 335,141,888 = this total + pooler"),
    dict(name="google/electra-small-generator", cls="ElectraModel",
         config=electra("ElectraForMaskedLM", 128, 256, 12, 4, 1024),
         notes="The released small generator has the small discriminator's shape (hidden 256, 4 heads, FFN 1024).",
         confirmed=f"{PADDLE}/electra/configuration.py (electra-small-generator); keras-hub electra_small_generator_uncased_en "
                   "13,548,800 = this total + pooler"),
    dict(name="google/electra-base-generator", cls="ElectraModel",
         config=electra("ElectraForMaskedLM", 768, 256, 12, 4, 1024),
         confirmed=f"{PADDLE}/electra/configuration.py (electra-base-generator: embedding 768, hidden 256, 4 heads, FFN 1024); "
                   "keras-hub 33,576,960 = this total + pooler"),
    dict(name="google/electra-large-generator", cls="ElectraModel",
         config=electra("ElectraForMaskedLM", 1024, 256, 24, 4, 1024),
         confirmed=f"{PADDLE}/electra/configuration.py (electra-large-generator: embedding 1024, hidden 256, 24 layers); "
                   "keras-hub 51,065,344 = this total + pooler"),
    dict(name="xlnet-base-cased", cls="XLNetModel", config=xlnet(768, 12, 12, 3072),
         notes="untie_r (true) is published but HF always stores r_w/r_r/r_s biases per layer; XLNet has no position table "
               "(sinusoidal relative positions) and no token-type table (relative segment encodings seg_embed per layer).",
         confirmed=f"{PADDLE}/xlnet/configuration.py XLNET_PRETRAINED_INIT_CONFIGURATION (xlnet-base-cased: d_model 768, "
                   "n_layer 12, n_head 12, d_head 64, d_inner 3072, vocab 32000)"),
    dict(name="xlnet-large-cased", cls="XLNetModel", config=xlnet(1024, 24, 16, 4096),
         confirmed=f"{PADDLE}/xlnet/configuration.py (xlnet-large-cased: d_model 1024, n_layer 24, n_head 16, d_inner 4096)"),
    dict(name="microsoft/deberta-base", cls="DebertaModel", config=deberta(768, 12, 12, 3072),
         notes="The published config.json has no architectures field (recorded as null). position_biased_input false: no "
               "absolute position table; type_vocab_size 0: no token-type table; max_relative_positions -1 -> "
               "max_position_embeddings, so rel_embeddings has 2*512 rows; c2p|p2c adds pos_proj (no bias) and "
               "pos_q_proj (bias) per layer. DebertaModel has no pooler.",
         confirmed=f"{PADDLE}/deberta/configuration.py DEBERTA_PRETRAINED_INIT_CONFIGURATION (deberta-base) and GitHub copies "
                   "of the deberta-large config.json (same keys)"),
    dict(name="microsoft/deberta-large", cls="DebertaModel", config=deberta(1024, 24, 16, 4096),
         notes="As deberta-base: no architectures field published, no absolute positions, no token types, 1024 relative rows.",
         confirmed="deberta-large config.json as quoted verbatim in GitHub copies (e.g. a GECToR loader's base_config, "
                   "PaddleNLP's deberta_large init configuration)"),
    dict(name="microsoft/deberta-v3-base", cls="DebertaV2Model", config=deberta_v3(768, 12, 12, 3072),
         notes="No architectures field published (recorded as null). position_buckets 256 -> rel_embeddings has 2*256 rows, "
               "followed by a LayerNorm (norm_rel_ebd); share_att_key true -> no separate pos_key_proj/pos_query_proj. "
               "DebertaV2Model has no pooler.",
         confirmed="deberta-v3 config.json values as quoted in many GitHub copies (e.g. a deberta-v3-xsmall config dump with "
                   "the same keys); total = keras-hub deberta_v3_presets.py deberta_v3_base_en params 183,831,552"),
    dict(name="microsoft/deberta-v3-large", cls="DebertaV2Model", config=deberta_v3(1024, 24, 16, 4096),
         notes="As deberta-v3-base.",
         confirmed="deberta-v3 config.json values (hidden 1024, 24 layers, 16 heads, FFN 4096); total = keras-hub "
                   "deberta_v3_large_en params 434,012,160"),
    dict(name="xlm-mlm-en-2048", cls="XLMModel",
         config=OrderedDict(architectures=["XLMWithLMHeadModel"], model_type="xlm", vocab_size=30145, emb_dim=2048,
                            n_layers=12, n_heads=16, max_position_embeddings=512, n_langs=1),
         notes="n_langs 1: XLMModel creates lang_embeddings only when n_langs > 1 and use_lang_emb, so there is no language "
               "table. FFN is 4*emb_dim. is_encoder (default true) -> no cross-attention layers.",
         confirmed=f"{PADDLE}/xlm/configuration.py XLM_PRETRAINED_INIT_CONFIGURATION (xlm-mlm-en-2048: n_langs 1, "
                   "vocab 30145, hidden 2048, 16 heads, 12 layers, 512 positions)"),
    dict(name="facebook/bart-base", cls="BartModel", config=bart(768, 6, 12, 3072),
         notes="embed_positions has max_position_embeddings + 2 rows (BART's learned-position offset of 2), one table in "
               "the encoder and one in the decoder. layernorm_embedding in both stacks; no final layer norm.",
         confirmed=f"{PADDLE}/bart/configuration.py (bart-base); keras-hub bart_presets.py bart_base_en 139,417,344 = "
                   "this total minus the 2+2 offset rows"),
    dict(name="facebook/bart-large", cls="BartModel", config=bart(1024, 12, 16, 4096),
         confirmed=f"{PADDLE}/bart/configuration.py and keras-hub bart_presets.py (bart_large_en config: vocab 50265, 12 layers, "
                   "16 heads, 1024, FFN 4096, 1024 positions; params 406,287,360 = this total minus the 2+2 offset rows)"),
    dict(name="t5-small", cls="T5Model", config=t5("T5ForConditionalGeneration", 512, 64, 2048, 6, 8),
         notes="feed_forward_proj is not in the published config: default relu (wi, wo, no gate). num_decoder_layers "
               "defaults to num_layers. Relative attention bias (32 buckets x heads) only in block 0 of each stack.",
         confirmed="t5-small config.json as quoted in GitHub copies (torchKQI script; older copies show architectures "
                   f"T5WithLMHeadModel); {PADDLE}/t5/configuration.py"),
    dict(name="t5-base", cls="T5Model", config=t5("T5ForConditionalGeneration", 768, 64, 3072, 12, 12),
         confirmed=f"t5-base config.json as quoted in GitHub copies; {PADDLE}/t5/configuration.py"),
    dict(name="t5-large", cls="T5Model", config=t5("T5ForConditionalGeneration", 1024, 64, 4096, 24, 16),
         confirmed=f"t5-large config.json as quoted in GitHub copies; {PADDLE}/t5/configuration.py"),
    dict(name="t5-3b", cls="T5Model", config=t5("T5WithLMHeadModel", 1024, 128, 16384, 24, 32),
         notes="d_kv 128 with 32 heads: attention inner dim 4096 != d_model 1024.",
         confirmed="google-t5/t5-3b raw config.json as captured in a GitHub log (d_ff 16384, d_kv 128, 32 heads, 24 layers); "
                   f"{PADDLE}/t5/configuration.py"),
    dict(name="t5-11b", cls="T5Model", config=t5("T5WithLMHeadModel", 1024, 128, 65536, 24, 128),
         notes="d_kv 128 with 128 heads: attention inner dim 16384; d_ff 65536.",
         confirmed=f"{PADDLE}/t5/configuration.py (t5-11b) and transformers' own Cosmos prompt-encoder default "
                   "(the t5-11b config: d_ff 65536, d_kv 128, 128 heads, 24 layers, vocab 32128)"),
    dict(name="openai-gpt", cls="OpenAIGPTModel",
         config=OrderedDict(architectures=["OpenAIGPTLMHeadModel"], model_type="openai-gpt", vocab_size=40478,
                            n_positions=512, n_embd=768, n_layer=12, n_head=12),
         notes="Post-LN blocks (ln_1 after attention, ln_2 after MLP) and no final LayerNorm; n_special 0.",
         confirmed="openai-gpt config.json as quoted verbatim in GitHub copies (torchKQI script; pytorch_pretrained_bert log)"),
    dict(name="gpt2", cls="GPT2Model", config=gpt2(768, 12, 12),
         confirmed="gpt2 config.json as quoted verbatim in GitHub copies (torchKQI script); total = keras-hub gpt2_presets.py "
                   "gpt2_base_en 124,439,808"),
    dict(name="gpt2-medium", cls="GPT2Model", config=gpt2(1024, 24, 16),
         confirmed="gpt2-medium config.json values (n_embd 1024, 24 layers, 16 heads, 1024 positions); total = keras-hub "
                   "gpt2_medium_en 354,823,168"),
    dict(name="gpt2-large", cls="GPT2Model", config=gpt2(1280, 36, 20),
         confirmed="gpt2-large config.json values (n_embd 1280, 36 layers, 20 heads); total = keras-hub gpt2_large_en 774,030,080"),
    dict(name="gpt2-xl", cls="GPT2Model", config=gpt2(1600, 48, 25),
         confirmed="gpt2-xl config.json values (n_embd 1600, 48 layers, 25 heads); total = keras-hub gpt2_extra_large_en "
                   "1,557,611,200"),
]

# Well-known totals the table must reproduce (base classes, tied weights once).
SANITY = {
    "bert-base-uncased": 109_482_240,
    "roberta-base": 124_645_632,
    "gpt2": 124_439_808,
    "t5-small": 60_506_624,
    "distilbert-base-uncased": 66_362_880,
}
# Totals of other implementations that differ from the HF base class by a known, countable amount
# (keras-hub presets' "params"); checked as a second, independent source of the config values.
def _pooler(h):
    return h * h + h


CROSS_CHECKS = {
    "bert-large-uncased": (335_141_888, 0, "keras-hub bert_large_en_uncased"),
    "albert-base-v2": (11_683_584, 0, "keras-hub albert_base_en_uncased"),
    "albert-large-v2": (17_683_968, 0, "keras-hub albert_large_en_uncased"),
    "albert-xlarge-v2": (58_724_864, 0, "keras-hub albert_extra_large_en_uncased"),
    "albert-xxlarge-v2": (222_595_584, 0, "keras-hub albert_extra_extra_large_en_uncased"),
    "sentence-transformers/all-MiniLM-L6-v2": (22_713_216, 0, "Distillery ParameterCountTests"),
    "roberta-large": (354_307_072, _pooler(1024) + 1024 + 2 * 1024, "keras-hub roberta_large_en (+pooler, +token type, +2 positions)"),
    "google/electra-small-discriminator": (13_548_800, -_pooler(256), "keras-hub (keras has a pooler)"),
    "google/electra-base-discriminator": (109_482_240, -_pooler(768), "keras-hub (keras has a pooler)"),
    "google/electra-large-discriminator": (335_141_888, -_pooler(1024), "keras-hub (keras has a pooler)"),
    "google/electra-small-generator": (13_548_800, -_pooler(256), "keras-hub (keras has a pooler)"),
    "google/electra-base-generator": (33_576_960, -_pooler(256), "keras-hub (keras has a pooler)"),
    "google/electra-large-generator": (51_065_344, -_pooler(256), "keras-hub (keras has a pooler)"),
    "microsoft/deberta-v3-base": (183_831_552, 0, "keras-hub deberta_v3_base_en"),
    "microsoft/deberta-v3-large": (434_012_160, 0, "keras-hub deberta_v3_large_en"),
    "facebook/bart-base": (139_417_344, 4 * 768, "keras-hub bart_base_en (+2 offset rows in each of 2 position tables)"),
    "facebook/bart-large": (406_287_360, 4 * 1024, "keras-hub bart_large_en (+2 offset rows in each of 2 position tables)"),
    "gpt2-medium": (354_823_168, 0, "keras-hub gpt2_medium_en"),
    "gpt2-large": (774_030_080, 0, "keras-hub gpt2_large_en"),
    "gpt2-xl": (1_557_611_200, 0, "keras-hub gpt2_extra_large_en"),
    "openai-gpt": (116_534_784, 0, "Distillery ParameterCountTests"),
}

# ---------------------------------------------------------------------------------------------


def build(spec):
    cfg_fields = {k: v for k, v in spec["config"].items() if k not in ("model_type",)}
    if cfg_fields.get("architectures") is None:
        cfg_fields.pop("architectures", None)
    config = transformers.AutoConfig.for_model(spec["config"]["model_type"], **cfg_fields)
    with torch.device("meta"):
        model = getattr(transformers, spec["cls"])(config)
    return config, model


def empty_breakdown():
    return OrderedDict((c, OrderedDict(total=0)) for c in COMPONENTS)


def add(bd, comp, sub, n):
    bd[comp]["total"] += n
    bd[comp][sub] = bd[comp].get(sub, 0) + n


def pattern_of(name):
    return re.sub(r"\.\d+\.", ".*.", re.sub(r"\.\d+\.", ".*.", name))


def count(spec):
    config, model = build(spec)
    total = sum(p.numel() for p in model.parameters())
    named = list(model.named_parameters())  # tied tensors once, under their first name
    assert sum(p.numel() for _, p in named) == total
    seq2seq = spec["cls"] in ("BartModel", "T5Model")
    whole = empty_breakdown()
    stacks = OrderedDict(encoder=empty_breakdown(), decoder=empty_breakdown()) if seq2seq else None
    shared = OrderedDict(total=0)
    lookup_total = 0
    tensors = OrderedDict()
    # ALBERT: one stored layer group applied num_hidden_layers / num_hidden_groups times
    repeat = 1
    if spec["cls"] == "AlbertModel":
        repeat = config.num_hidden_layers // config.num_hidden_groups
    applied = OrderedDict((c, 0) for c in COMPONENTS)
    for name, p in named:
        n = p.numel()
        comp, sub, lookup, rule = classify(name)
        add(whole, comp, sub, n)
        if lookup:
            lookup_total += n
        applied[comp] += n * (repeat if "albert_layer_groups" in name else 1)
        where = "model"
        if seq2seq:
            if name.startswith("encoder."):
                where = "encoder"
                add(stacks["encoder"], comp, sub, n)
            elif name.startswith("decoder."):
                where = "decoder"
                add(stacks["decoder"], comp, sub, n)
            else:
                where = "shared"
                shared["total"] += n
                shared[name] = n
        pat = pattern_of(name)
        t = tensors.setdefault(pat, OrderedDict(component=comp, sub=sub, lookup=lookup, where=where, rule=rule,
                                                tensors=0, params=0))
        t["tensors"] += 1
        t["params"] += n
    assert sum(b["total"] for b in whole.values()) == total
    entry = OrderedDict()
    entry["name"] = spec["name"]
    entry["class"] = spec["cls"]
    entry["total"] = total
    entry["non_embedding"] = total - lookup_total
    entry["components"] = whole
    if seq2seq:
        entry["shared"] = shared
        for k in ("encoder", "decoder"):
            sub = stacks[k]
            entry[k] = OrderedDict(total=sum(b["total"] for b in sub.values()), components=sub)
        assert shared["total"] + entry["encoder"]["total"] + entry["decoder"]["total"] == total
    if repeat > 1:
        entry["applied"] = OrderedDict(total=sum(applied.values()), components=applied,
                                       note=f"the one ALBERT layer group is applied {repeat} times per forward pass")
    entry["tie_word_embeddings"] = bool(getattr(config, "tie_word_embeddings", False))
    entry["config"] = "configs/" + spec["name"].replace("/", "__") + ".json"
    if spec.get("notes"):
        entry["notes"] = spec["notes"]
    entry["source"] = (f"transformers {transformers.__version__} {spec['cls']} on the meta device, "
                       f"config from {spec['confirmed']}")
    entry["tensors"] = tensors
    return entry


# ---------------------------------------------------------------------------------------------
# GPT-3 (Brown et al. 2020, Table 2.1).  "GPT-2-style" means the attention width equals d_model,
# as in GPT-2.  Two rows of the table are not self-consistent: GPT-3 XL prints n_heads 24 and
# d_head 128 (= 3072) with d_model 2048, and GPT-3 13B prints d_model 5140 with 40 x 128 = 5120.
# The primary count uses d_model as printed; the alternatives are recorded next to it.
# ---------------------------------------------------------------------------------------------
GPT3 = [
    # name, paper n_params (as printed), value, n_layers, d_model, n_heads, d_head
    ("GPT-3 Small", "125M", 125e6, 12, 768, 12, 64),
    ("GPT-3 Medium", "350M", 350e6, 24, 1024, 16, 64),
    ("GPT-3 Large", "760M", 760e6, 24, 1536, 16, 96),
    ("GPT-3 XL", "1.3B", 1.3e9, 24, 2048, 24, 128),
    ("GPT-3 2.7B", "2.7B", 2.7e9, 32, 2560, 32, 80),
    ("GPT-3 6.7B", "6.7B", 6.7e9, 32, 4096, 32, 128),
    ("GPT-3 13B", "13.0B", 13.0e9, 40, 5140, 40, 128),
    ("GPT-3 175B", "175.0B", 175.0e9, 96, 12288, 96, 128),
]
GPT3_VOCAB, GPT3_CTX = 50257, 2048


def gpt_style_count(n_layers, d_model, d_attn=None, vocab=GPT3_VOCAB, ctx=GPT3_CTX, d_ff=None):
    """GPT-2 layout: wte (tied LM head, so no extra matrix), wpe, per block ln_1, c_attn (d_model -> 3 d_attn,
    bias), c_proj (d_attn -> d_model, bias), ln_2, c_fc (d_model -> d_ff, bias), c_proj (d_ff -> d_model, bias);
    final ln_f."""
    d_attn = d_attn or d_model
    d_ff = d_ff or 4 * d_model
    attn = d_model * 3 * d_attn + 3 * d_attn + d_attn * d_model + d_model
    ffn = d_model * d_ff + d_ff + d_ff * d_model + d_model
    norms = 2 * 2 * d_model
    body = n_layers * (attn + ffn + norms) + 2 * d_model
    return dict(total=vocab * d_model + ctx * d_model + body, word=vocab * d_model, position=ctx * d_model,
                attention=n_layers * attn, ffn=n_layers * ffn, layer_norm=n_layers * norms + 2 * d_model,
                non_embedding=body)


def rounds_to(printed, x):
    """Round x the way the paper printed its figure (unit M or B, same number of decimals)."""
    unit = 1e9 if printed.endswith("B") else 1e6
    digits = len(printed[:-1].split(".")[1]) if "." in printed else 0
    shown = round(x / unit, digits)
    return shown == float(printed[:-1]), f"{shown:.{digits}f}{printed[-1]}"


def gpt3_rows():
    rows = []
    for name, printed, value, L, D, H, dh in GPT3:
        c = gpt_style_count(L, D)
        row = OrderedDict(name=name, paper_n_params=printed, n_layers=L, d_model=D, n_heads=H, d_head=dh,
                          n_ctx=GPT3_CTX, vocab_size=GPT3_VOCAB, d_ff=4 * D)
        row["computed"] = c["total"]
        row["computed_non_embedding"] = c["non_embedding"]
        row["components"] = OrderedDict(
            embeddings=OrderedDict(total=c["word"] + c["position"], word=c["word"], position=c["position"]),
            attention=OrderedDict(total=c["attention"]), ffn=OrderedDict(total=c["ffn"]),
            layer_norm=OrderedDict(total=c["layer_norm"]), pooler=OrderedDict(total=0))
        ok, shown = rounds_to(printed, c["total"])
        row["computed_rounded_like_paper"] = shown
        row["rounds_to_paper"] = ok
        row["relative_difference"] = round(c["total"] / value - 1, 4)
        # the same model built by transformers: GPT2Model(n_positions=2048); tied LM head adds nothing.
        # The count does not depend on how d_model is split into heads; when the paper's n_heads does
        # not divide d_model, the nearest head count that does is used to build it.
        heads = H if D % H == 0 else min((h for h in range(1, D + 1) if D % h == 0), key=lambda h: (abs(h - H), h))
        cfg = transformers.GPT2Config(vocab_size=GPT3_VOCAB, n_positions=GPT3_CTX, n_embd=D, n_layer=L, n_head=heads)
        with torch.device("meta"):
            m = transformers.GPT2Model(cfg)
        hf = sum(p.numel() for p in m.parameters())
        assert hf == c["total"], (name, hf, c["total"])
        row["check"] = (f"equals transformers {transformers.__version__} GPT2Model(n_embd={D}, n_layer={L}, "
                        f"n_head={heads}, n_positions=2048) on the meta device")
        if H * dh != D:
            w = H * dh
            alt = gpt_style_count(L, D, d_attn=w)
            a_ok, a_shown = rounds_to(printed, alt["total"])
            row["inconsistent_in_paper"] = f"n_heads * d_head = {H} * {dh} = {w} != d_model {D}"
            row["computed_with_attention_width_%d" % w] = alt["total"]
            notes = [f"with Q/K/V {D}->{w} and output {w}->{D} the count would be {alt['total']:,} "
                     f"({a_shown}, {'rounds' if a_ok else 'does not round'} to {printed})"]
            if abs(w - D) < 100:  # 13B: 5140 vs 5120 reads like a typo for 5120
                sq = gpt_style_count(L, w)
                s_ok, s_shown = rounds_to(printed, sq["total"])
                row["computed_if_d_model_%d" % w] = sq["total"]
                notes.append(f"with d_model {w} throughout it would be {sq['total']:,} "
                             f"({s_shown}, {'rounds' if s_ok else 'does not round'} to {printed})")
            if D % H:
                notes.append(f"{D} is not divisible by {H} heads; GPT2Model was built with {heads} heads")
            row["note"] = "; ".join(notes)
        row["source"] = "GPT-3 paper Table 2.1 (Brown et al. 2020, arXiv:2005.14165)"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with OUT/counts.json, write nothing")
    a = ap.parse_args()

    entries = [count(s) for s in MODELS]
    by_name = {e["name"]: e for e in entries}
    problems = []
    for name, want in SANITY.items():
        if by_name[name]["total"] != want:
            problems.append(f"sanity: {name} total {by_name[name]['total']} != {want}")
    for name, (other, delta, what) in CROSS_CHECKS.items():
        if by_name[name]["total"] != other + delta:
            problems.append(f"cross-check: {name} total {by_name[name]['total']} != {other} + {delta} ({what})")

    table = OrderedDict()
    table["about"] = ("Parameter counts of Hugging Face base model classes by component (see "
                      "Tests/Scripts/param_counts.py for which tensor goes where). total counts tied/shared "
                      "tensors once, as model.parameters() does; non_embedding = total minus the embedding lookup "
                      f"tables ({', '.join(LOOKUP)}).")
    table["generated_with"] = OrderedDict(transformers=transformers.__version__, torch=torch.__version__.split("+")[0])
    table["models"] = entries
    table["gpt3"] = gpt3_rows()

    if a.check:
        with open(os.path.join(a.out, "counts.json")) as f:
            old = json.load(f)
        old_totals = {m["name"]: m["total"] for m in old["models"]}
        for e in entries:
            if old_totals.get(e["name"]) != e["total"]:
                problems.append(f"check: {e['name']} {e['total']} != stored {old_totals.get(e['name'])}")
        if json.loads(json.dumps(table["models"])) != old["models"]:
            problems.append("check: model entries differ from counts.json")
    else:
        os.makedirs(os.path.join(a.out, "configs"), exist_ok=True)
        for s in MODELS:
            path = os.path.join(a.out, "configs", s["name"].replace("/", "__") + ".json")
            with open(path, "w") as f:
                json.dump(s["config"], f, indent=2)
                f.write("\n")
        with open(os.path.join(a.out, "counts.json"), "w") as f:
            json.dump(table, f, indent=2)
            f.write("\n")

    # round trip: the config files on disk rebuild the same models
    for s, e in zip(MODELS, entries):
        path = os.path.join(a.out, e["config"])
        if not os.path.exists(path):
            problems.append(f"missing {path}")
            continue
        with open(path) as f:
            stored = json.load(f, object_pairs_hook=OrderedDict)
        if stored != json.loads(json.dumps(s["config"])):
            problems.append(f"{path} differs from the config in this script")
        _, m = build(dict(s, config=stored))
        if sum(p.numel() for p in m.parameters()) != e["total"]:
            problems.append(f"{path} rebuilds to a different total")

    w = max(len(e["name"]) for e in entries)
    for e in entries:
        print(f"{e['name']:<{w}}  {e['total']:>16,}  non-embedding {e['non_embedding']:>16,}")
    for r in table["gpt3"]:
        print(f"{r['name']:<{w}}  {r['computed']:>16,}  paper {r['paper_n_params']:>7}  "
              f"{'rounds' if r['rounds_to_paper'] else 'does NOT round'} ({r['computed_rounded_like_paper']})")
    for p in problems:
        print("PROBLEM:", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
