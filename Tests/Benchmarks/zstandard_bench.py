"""Python zstandard on the same bytes as `distill bench checkpoint`, for reference only.

    pip install zstandard
    python3 Tests/Benchmarks/zstandard_bench.py .models/all-MiniLM-L6-v2/model.safetensors

Compresses the whole safetensors file as one frame at levels 3 and 19, with 1 and 2 threads,
and decompresses it; prints size, ratio and MB/s (of raw bytes).
"""
import sys, time

import zstandard

data = open(sys.argv[1], "rb").read()
mb = len(data) / 1e6
print(f"raw {len(data):,} bytes")
print("level\tthreads\tbytes\tratio\twrite MB/s\tread MB/s")
for level in (3, 19):
    for threads in (1, 2):
        c = zstandard.ZstdCompressor(level=level, threads=threads if threads > 1 else 0, write_checksum=True)
        t = time.perf_counter(); out = c.compress(data); w = time.perf_counter() - t
        d = zstandard.ZstdDecompressor()
        t = time.perf_counter(); back = d.decompress(out); r = time.perf_counter() - t
        assert back == data
        print(f"{level}\t{threads}\t{len(out):,}\t{len(data) / len(out):.3f}\t{mb / w:.1f}\t{mb / r:.1f}")
