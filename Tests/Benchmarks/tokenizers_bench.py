"""Hugging Face tokenizers (Rust) throughput on the same file and vocabulary as
`distill bench tokenize`, for comparison only.

    pip install tokenizers
    python3 Tests/Benchmarks/tokenizers_bench.py .models/all-MiniLM-L6-v2/vocab.txt ../shared/data/train.txt

Encodes every line with BertWordPieceTokenizer(lowercase=True).encode_batch, with 1 and 2
Rayon threads (each in a fresh process, since Rayon fixes its pool at start-up), median of 5.
"""
import os, statistics, subprocess, sys, time

if len(sys.argv) == 4:  # child: one thread count
    from tokenizers import BertWordPieceTokenizer
    vocab, path = sys.argv[1], sys.argv[2]
    tok = BertWordPieceTokenizer(vocab, lowercase=True)
    data = open(path, encoding="utf-8").read()
    lines = data.split("\n")
    mb = len(data.encode("utf-8")) / 1e6
    times = []
    for _ in range(5):
        t = time.perf_counter()
        enc = tok.encode_batch(lines)
        times.append(time.perf_counter() - t)
    n = sum(len(e.ids) for e in enc)
    med = statistics.median(times)
    print(f"{os.environ['RAYON_NUM_THREADS']}\t{med:.3f}\t{mb / med:.1f}\t{n}")
    sys.exit(0)

vocab, path = sys.argv[1], sys.argv[2]
print("threads\tseconds\tMB/s\ttokens (with [CLS]/[SEP])")
for threads in ("1", "2"):
    env = dict(os.environ, RAYON_NUM_THREADS=threads, RAYON_RS_NUM_CPUS=threads, TOKENIZERS_PARALLELISM="true")
    out = subprocess.run([sys.executable, __file__, vocab, path, "child"], env=env, capture_output=True, text=True)
    print(out.stdout.strip() or out.stderr)
