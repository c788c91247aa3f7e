#!/usr/bin/env python3
"""What a second durable write per journal turn would cost (docs/ledger.md, "Why the last
synced records' loss is not detected").

One turn = a 200-byte record written into a preallocated segment, then made durable. Measured
four ways, medians of 5 rounds of 300 turns, in DIR (default target/sync-cost, on the disk the
stores use; removed afterwards):

- one:             the record, one fdatasync (what a journal turn costs today);
- same_file_slot:  the record and a 64-byte slot at the file's start, one fdatasync;
- two_seq:         the record, fdatasync, then a slot in a second file, fdatasync;
- two_threads:     the same, both syncs at once from two threads (Python threads: the
                   thread's start is included, so this one is an upper bound).

    python3 benches/ledger/sync_cost.py
"""
import os
import pathlib
import shutil
import statistics
import threading
import time

root = pathlib.Path(__file__).resolve().parents[2]
d = pathlib.Path(os.environ.get("DIR", root / "target" / "sync-cost"))
d.mkdir(parents=True, exist_ok=True)
seg = os.open(d / "segment", os.O_RDWR | os.O_CREAT)
os.ftruncate(seg, 64 << 20)
mark = os.open(d / "mark", os.O_RDWR | os.O_CREAT)
os.ftruncate(mark, 4096)
record, slot = b"r" * 200, b"m" * 64


def timed(turn, n=300):
    off = 8192
    start = time.perf_counter()
    for _ in range(n):
        turn(off)
        off += len(record)
    return (time.perf_counter() - start) / n * 1e3


def one(off):
    os.pwrite(seg, record, off)
    os.fdatasync(seg)


def same_file_slot(off):
    os.pwrite(seg, record, off)
    os.pwrite(seg, slot, 0)
    os.fdatasync(seg)


def two_seq(off):
    os.pwrite(seg, record, off)
    os.fdatasync(seg)
    os.pwrite(mark, slot, 0)
    os.fdatasync(mark)


def two_threads(off):
    os.pwrite(seg, record, off)
    os.pwrite(mark, slot, 0)
    other = threading.Thread(target=os.fdatasync, args=(mark,))
    other.start()
    os.fdatasync(seg)
    other.join()


ways = (one, same_file_slot, two_seq, two_threads)
results = {w.__name__: [] for w in ways}
for _ in range(5):
    for w in ways:
        results[w.__name__].append(timed(w))
base = statistics.median(results["one"])
for name, ms in results.items():
    m = statistics.median(ms)
    print(f"{name:16} {m:.3f} ms a turn ({m / base:.2f}x)")
os.close(seg)
os.close(mark)
shutil.rmtree(d)
