#!/bin/sh
# Layer matches on real text, side by side (issue 13): the same teacher (all-MiniLM-L6-v2), the
# same data (.data/train.txt), the same step budget and optimizer, three ways to match it —
#   cos       DistilBERT's cosine on the last hidden states (through a projection when narrower),
#   mse       TinyBERT's hidden-state MSE on layers 1, 2, 3 ↔ 1, 4, 6 (projected when narrower),
#   relation  MiniLMv2's Q-Q, K-K, V-V self-relations of the last layer (16 relation heads),
# for two students: 3 × 384 (teacher layers 0, 3, 5) and 3 × 256 (ALBERT-factorized, E = 128
# from the teacher's embeddings, no sharing, blocks random). Each student also runs with lr = 0
# ("init"): the same student before distillation. Then one `distill compare` of all of them:
# held-out sentence cosine to the teacher (same width only), MLM columns where there is a head,
# and the frozen-embedding sentiment probe (rt_train → rt_dev).
#
#   swift build -c release && Tests/Benchmarks/layer_matches.sh [STEPS] [OUT]
#
# About 25 minutes on two cores at 200 steps.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
STEPS=${1:-200}
OUT=${2:-$ROOT/runs/layer-matches}
DISTILL=${DISTILL:-$ROOT/.build/release/distill}
TEACHER=$ROOT/.models/all-MiniLM-L6-v2
DATA=$ROOT/.data
for f in "$TEACHER/model.safetensors" "$DATA/train.txt" "$DATA/heldout.txt" "$DATA/rt_train.tsv" "$DATA/rt_dev.tsv"; do
    [ -f "$f" ] || { echo "missing $f: run .ci/fetch-teacher and .ci/fetch-data" >&2; exit 1; }
done
mkdir -p "$OUT"

student() {
    case $1 in
    384) printf '[student]\nbuilder = "layers"\nlayers = [0, 3, 5]\n' ;;
    256) printf '[student]\nbuilder = "albert"\nembedding_size = 128\nhidden_size = 256\nnum_layers = 3\nnum_heads = 4\nintermediate_size = 1024\nsharing = "none"\n' ;;
    esac
}

losses() { # $1 kind, $2 width
    printf '[loss]\nalpha_ce = 0.0\nalpha_mlm = 0.0\n'
    case $1 in
    cos|init)
        if [ "$2" = 384 ]; then printf 'alpha_cos = 1.0\n'
        else printf 'alpha_cos = 0.0\n[[loss.match]]\nkind = "hidden_cos"\nteacher = 6\nstudent = 3\n'; fi ;;
    mse)
        printf 'alpha_cos = 0.0\n'
        for p in "1 1" "4 2" "6 3"; do
            set -- $p
            printf '[[loss.match]]\nkind = "hidden_mse"\nteacher = %s\nstudent = %s\n' "$1" "$2"
        done ;;
    relation)
        printf 'alpha_cos = 0.0\n[[loss.match]]\nkind = "relation"\nteacher = 6\nstudent = 3\nrelation_heads = 16\n' ;;
    esac
}

for width in 384 256; do
    for kind in init cos mse relation; do
        name=$kind-$width
        steps=$STEPS lr=5e-4
        if [ $kind = init ]; then steps=1 lr=0.0; fi
        {
            printf 'name = "%s"\noutput = "%s"\nseed = 42\n\n[teacher]\nmodel = "%s"\n\n' "$name" "$OUT/$name" "$TEACHER"
            student $width
            printf '\n[data]\ntrain = ["%s"]\nheldout = ["%s"]\nmax_seq_len = 128\nmlm_probability = 0.0\n\n' "$DATA/train.txt" "$DATA/heldout.txt"
            losses $kind $width
            printf '\n[optimizer]\nlr = %s\nbetas = [0.9, 0.98]\neps = 1e-6\nweight_decay = 0.01\nwarmup = 0.05\nclip = 5.0\n' "$lr"
            printf '\n[training]\nsteps = %s\nbatch_size = 16\n\n[eval]\nevery = %s\nbatches = 20\n\n[checkpoint]\nevery = %s\n' "$steps" "$steps" "$steps"
        } > "$OUT/$name.toml"
        if [ -f "$OUT/$name/student/model.safetensors" ]; then echo "$name: done before"; continue; fi
        echo "== $name"
        start=$(date +%s)
        "$DISTILL" run "$OUT/$name.toml" --overwrite
        echo "$name: $(( $(date +%s) - start )) s" | tee -a "$OUT/wall-times.txt"
    done
done

"$DISTILL" compare "$TEACHER" \
    "$OUT/init-384/student" "$OUT/cos-384/student" "$OUT/mse-384/student" "$OUT/relation-384/student" \
    "$OUT/init-256/student" "$OUT/cos-256/student" "$OUT/mse-256/student" "$OUT/relation-256/student" \
    --data "$DATA/heldout.txt" --batches 20 --iterations 5 \
    --probe-train "$DATA/rt_train.tsv" --probe-test "$DATA/rt_dev.tsv" --label label --text text | tee "$OUT/compare.txt"
