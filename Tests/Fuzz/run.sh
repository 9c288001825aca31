#!/bin/sh
# Fuzzes Distillery's readers with libFuzzer: safetensors, checkpoints, prepared token files,
# vocabularies and the tokenizer, recipes, config.json.
#
#   Tests/Fuzz/run.sh [SECONDS] [TARGET …]        (default: 600 s each, every target)
#
# Seeds come from the test fixtures; the corpus grows in .build-fuzz/corpus/TARGET. Whatever
# crashes, leaks or exhausts memory is copied to Tests/DistilleryTests/Fixtures/fuzz-regressions/
# TARGET/, which the test suite replays on every run (FuzzRegressionTests).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-safetensors checkpoint tokens vocabulary recipe config}
scratch=$root/.build-fuzz
fixtures=$root/Tests/DistilleryTests/Fixtures

swift build -c release --package-path "$here" --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xcc -fsanitize=fuzzer-no-link,address -Xswiftc -use-ld=lld
# Seeds for the readers that take files Distillery writes: a checkpoint and a token file.
distill=$root/.build/release/distill
[ -x "$distill" ] || (cd "$root" && swift build -c release --product distill)
seeds=$scratch/seeds
rm -rf "$seeds"
for t in $targets; do
    mkdir -p "$seeds/$t" "$scratch/corpus/$t" "$scratch/findings/$t"
    # The committed part of an earlier minimised corpus (replayed by FuzzRegressionTests too).
    [ -d "$fixtures/fuzz-corpus/$t" ] && cp "$fixtures/fuzz-corpus/$t"/* "$seeds/$t/" 2>/dev/null || true
done
for t in $targets; do
    case $t in
    safetensors) for f in "$fixtures"/*/reference.safetensors "$fixtures"/tiny-bert-mlm/model.safetensors; do
                     [ "$(stat -c %s "$f")" -lt 600000 ] && cp "$f" "$seeds/$t/$(basename "$(dirname "$f")")-$(basename "$f")"; done ;;
    checkpoint) "$distill" convert "$fixtures/tiny-bert-mlm" "$seeds/$t/tiny-bert.safetensors.zst" >/dev/null
                "$distill" convert "$fixtures/tiny-albert-mlm" "$seeds/$t/tiny-albert-shuffled.safetensors.zst" --byte-shuffle >/dev/null
                "$distill" quantize "$fixtures/tiny-bert-mlm" "$seeds/$t/tiny-bert-int8.safetensors.zst" >/dev/null 2>&1 || true ;;
    tokens) head -c 20000 "$root/recipes/data/demo-heldout.txt" > "$seeds/text.txt"
            "$distill" prepare --tokenizer "$fixtures/tiny-vocab/vocab.txt" --input "$seeds/text.txt" --out "$seeds/$t/heldout.tok" --max-seq-len 32 >/dev/null ;;
    vocabulary) { cat "$fixtures/tiny-vocab/vocab.txt"; printf '\000'; head -c 2000 "$root/recipes/data/demo-heldout.txt"; } > "$seeds/$t/tiny"
                { head -n 2000 "$fixtures/tokenizer/vocab.txt"; printf '\000'; printf 'Héllo, wörld! 東京 unaffable'; } > "$seeds/$t/bert" ;;
    recipe) cp "$root"/recipes/*.toml "$seeds/$t/" ;;
    config) for d in "$fixtures"/*/config.json; do cp "$d" "$seeds/$t/$(basename "$(dirname "$d")").json"; done
            cp "$fixtures"/param-counts/configs/*.json "$seeds/$t/" ;;
    esac
done
for t in $targets; do
    case $t in safetensors|checkpoint) max=800000 ;; tokens) max=65536 ;; *) max=20000 ;; esac
    echo "== fuzz-$t for $seconds s"
    ASAN_OPTIONS=detect_leaks=0 "$scratch/release/fuzz-$t" "$scratch/corpus/$t" "$seeds/$t" \
        -max_total_time="$seconds" -max_len=$max -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$scratch/findings/$t/" 2>&1 | grep -E "^#|stat::|ERROR|SUMMARY|Done" | tail -12 || true
    if ls "$scratch/findings/$t"/* >/dev/null 2>&1; then
        mkdir -p "$fixtures/fuzz-regressions/$t"
        cp "$scratch/findings/$t"/* "$fixtures/fuzz-regressions/$t/"
        echo "findings copied to Tests/DistilleryTests/Fixtures/fuzz-regressions/$t"
    fi
done
