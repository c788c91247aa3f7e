#!/usr/bin/env python3
"""Run fuzz targets until their coverage stops rising (docs/fuzzing.md, "Plateau runs").

Runs each target's built libFuzzer binary over a kept corpus and the committed seeds, one
target after another, and stops a target when its coverage (libFuzzer's `cov`, edges) has not
risen for QUIET seconds of running time -- a plateau -- or when it has run CAP seconds. Time
the run spent stopped does not count: while the file named by PAUSE exists the target is held
with SIGSTOP (for a benchmark on the same machine), and resumed when it is gone.

    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -s none     # the binaries
    python3 plateau.py money_text usage ...                    # or no name: every target
    python3 plateau.py --pack                                  # keep the corpora (below)

The corpora are kept between sessions in fuzz/kept/<target>.tar.xz (committed): a target
whose corpus directory is empty starts from its kept corpus, and `--pack` minimizes each
corpus (libFuzzer's -merge=1: the smallest set of inputs with the same coverage) and writes
it back there, so that plateau runs add up across sessions instead of starting from the
seeds each time.

Environment (all optional):
    BIN      directory of the built targets (default: $CARGO_TARGET_DIR or fuzz/target,
             then x86_64-unknown-linux-gnu/release)
    CORPUS   directory holding a kept corpus per target (default fuzz/corpus)
    QUIET    seconds without a rise of `cov` that count as a plateau (default 600)
    CAP      most seconds a target runs (default 3600)
    PAUSE    a file whose presence holds the run (default /tmp/paygo-fuzz-pause)
    SUMMARY  file the one-line results are appended to (default CORPUS/plateau.log)
    FLAGS    more libFuzzer flags, space-separated (say -print_pcs=1, for newpcs.py)
    PLATEAU  what must stop rising: `cov` (default: every edge libFuzzer counts) or `own`
             (edges in paygo's code or the harness, as newpcs.py places them: each new edge
             found after the kept corpus is loaded is named with llvm-symbolizer as it comes;
             implies -print_pcs=1). `own` is for the targets whose `cov` never settles because
             it counts edges that follow thread scheduling and hash seeds, not the input
             (docs/fuzzing.md, "Where the late edges are").

The target's log (CORPUS/<target>.log) holds libFuzzer's output, each line led by the
running second it was read at, and the address the target's binary was loaded at (so that
newpcs.py can name the code of each new edge that -print_pcs=1 reports).

A target with a dictionary (fuzz/dicts/<target>.dict, written by dicts.py) runs with it.

A result line gives the running time, executions, `cov` at a quarter, a half and three
quarters of the running time and at the end, `ft`, when `cov` last rose, and whether the
target plateaued; a crash or a property failure ends the target with libFuzzer's exit code
and its artifact under fuzz/artifacts/<target>/.
"""
import os
import pathlib
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import newpcs

here = pathlib.Path(__file__).resolve().parent
target_dir = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", here / "target"))
bin_dir = pathlib.Path(os.environ.get("BIN", target_dir / "x86_64-unknown-linux-gnu/release"))
corpus_root = pathlib.Path(os.environ.get("CORPUS", here / "corpus"))
quiet = float(os.environ.get("QUIET", "600"))
cap = float(os.environ.get("CAP", "3600"))
pause = pathlib.Path(os.environ.get("PAUSE", "/tmp/paygo-fuzz-pause"))
summary = pathlib.Path(os.environ.get("SUMMARY", corpus_root / "plateau.log"))
flags = os.environ.get("FLAGS", "").split()
measure = os.environ.get("PLATEAU", "cov")
if measure not in ("cov", "own"):
    sys.exit(f"PLATEAU={measure}: expected cov or own")
if measure == "own" and "-print_pcs=1" not in flags:
    flags.append("-print_pcs=1")
status = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")
inited = re.compile(r"^#\d+\s+INITED")
kept = here / "kept"


def unpack(target, corpus):
    """Fills an empty corpus directory from the target's kept corpus, if there is one."""
    archive = kept / f"{target}.tar.xz"
    if archive.exists() and not any(corpus.iterdir()):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                # Plain files only, named by their hash: nothing outside the directory.
                if member.isfile() and "/" not in member.name and not member.name.startswith("."):
                    (corpus / member.name).write_bytes(tar.extractfile(member).read())


def pack(target):
    """Minimizes the target's corpus into fuzz/kept/<target>.tar.xz (same bytes for the same set)."""
    corpus = corpus_root / target
    if not corpus.is_dir() or not any(corpus.iterdir()):
        print(f"{target}: no corpus to keep")
        return
    kept.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as merged:
        subprocess.run([str(bin_dir / target), "-merge=1", merged, str(corpus)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        names = sorted(os.listdir(merged))
        with tarfile.open(kept / f"{target}.tar.xz", "w:xz") as tar:
            for name in names:
                info = tar.gettarinfo(os.path.join(merged, name), arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(os.path.join(merged, name), "rb") as f:
                    tar.addfile(info, f)
    size = (kept / f"{target}.tar.xz").stat().st_size
    print(f"{target}: kept {len(names)} inputs of {len(os.listdir(corpus))} ({size:,} bytes)")


def run(target):
    corpus = corpus_root / target
    corpus.mkdir(parents=True, exist_ok=True)
    unpack(target, corpus)
    artifacts = here / "artifacts" / target
    artifacts.mkdir(parents=True, exist_ok=True)
    log = open(corpus_root / f"{target}.log", "w")
    words = here / "dicts" / f"{target}.dict"
    child = subprocess.Popen(
        [str(bin_dir / target), str(corpus), str(here / "seeds" / target),
         f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
         *([f"-dict={words}"] if words.exists() else []), *flags],
        stderr=subprocess.PIPE, stdout=log, text=True, errors="replace")
    # The binary's first mapping is its load address (looked for until it has been mapped).
    binary = os.path.realpath(bin_dir / target)
    for _ in range(100):
        with open(f"/proc/{child.pid}/maps") as maps:
            base = next((line.split("-")[0] for line in maps if line.rstrip().endswith(binary)), None)
        if base or child.poll() is not None:
            break
        time.sleep(0.02)
    # With the binary's modification time: newpcs.py refuses a log whose binary was rebuilt.
    log.write(f"0 load base 0x{base} {binary} {os.stat(binary).st_mtime_ns}\n")
    # Samples of (running seconds, execs, cov, ft), written by the reader, read by the loop;
    # with PLATEAU=own, also when the corpus was loaded and when an own edge was last found.
    samples, lock, clock = [], threading.Lock(), {"running": 0.0}
    own = {"inited": None, "last": None, "count": 0}
    symbolizer = None
    if measure == "own":
        symbolizer = subprocess.Popen(["llvm-symbolizer", f"--obj={binary}"], text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def name(pc):
        """The kind of code a new edge is in (newpcs.kind), asked of the running symbolizer."""
        symbolizer.stdin.write(f"0x{int(pc, 16) - int(base, 16):x}\n")
        symbolizer.stdin.flush()
        block = []
        for answer in symbolizer.stdout:
            if answer == "\n":
                break
            block.append(answer)
        return newpcs.kind(newpcs.parse("".join(block)))

    def read():
        for line in child.stderr:
            running = clock["running"]
            log.write(f"{running:.0f} {line}")
            m = status.match(line)
            if m:
                with lock:
                    samples.append((running, int(m[1]), int(m[2]), int(m[3])))
            if symbolizer is None:
                continue
            if own["inited"] is None:
                if inited.match(line):
                    with lock:
                        own["inited"] = running
                continue
            if "\tNEW_PC: " in line and name(line.split()[-1]) in newpcs.OWN:
                with lock:
                    own["last"], own["count"] = running, own["count"] + 1
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    held, last, rose_at, best = False, time.monotonic(), 0.0, -1
    while child.poll() is None:
        time.sleep(0.5)
        now = time.monotonic()
        if pause.exists():
            if not held:
                child.send_signal(signal.SIGSTOP)
                held = True
            last = now
            continue
        if held:
            child.send_signal(signal.SIGCONT)
            held = False
        clock["running"] += now - last
        last = now
        with lock:
            if measure == "own":
                rose_at = max(own["last"] or 0.0, own["inited"] or clock["running"])
            elif samples and samples[-1][2] > best:
                best, rose_at = samples[-1][2], samples[-1][0]
        if clock["running"] - rose_at >= quiet or clock["running"] >= cap:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            break
    reader.join(timeout=30)
    code = child.wait()
    if symbolizer is not None:
        symbolizer.stdin.close()
        symbolizer.wait()
    log.close()
    running = clock["running"]
    with lock:
        done = list(samples)
    if not done:
        line = f"{target}: no status line from libFuzzer (exit {code}); see {corpus_root / (target + '.log')}"
    else:
        def cov_at(fraction):
            before = [s for s in done if s[0] <= running * fraction]
            return before[-1][2] if before else done[0][2]
        execs, cov, ft = done[-1][1], done[-1][2], done[-1][3]
        rose = next(s[0] for s in done if s[2] == cov)
        if measure == "own":
            mark = own["last"] if own["last"] is not None else (own["inited"] or 0.0)
            plateau = running - mark >= quiet
        else:
            plateau = running - rose >= quiet
        ended = "plateau" if plateau else ("cap" if running >= cap else f"exit {code}")
        line = (f"{target}: {running / 60:.1f} min, {execs:,} execs ({execs / max(running, 1):,.0f}/s), "
                f"cov {cov_at(0.25):,}, {cov_at(0.5):,}, {cov_at(0.75):,} -> {cov:,}, ft {ft:,}, "
                f"cov last rose at {rose:,.0f} s")
        if measure == "own":
            line += (f", {own['count']} new edges in paygo's code or the harness after the corpus "
                     f"loaded at {own['inited'] or 0:,.0f} s")
            if own["last"] is not None:
                line += f", the last at {own['last']:,.0f} s"
        line += f"; {ended}"
        if code not in (0, -signal.SIGINT, 130, 72) and not plateau and running < cap:
            line += f" (libFuzzer exit {code}: see {artifacts})"
    print(line, flush=True)
    with open(summary, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M')} {line}\n")


if __name__ == "__main__":
    packing = "--pack" in sys.argv[1:]
    names = [a for a in sys.argv[1:] if a != "--pack"]
    names = names or sorted(p.stem for p in (here / "fuzz_targets").glob("*.rs"))
    for name in names:
        pack(name) if packing else run(name)
