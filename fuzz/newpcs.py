#!/usr/bin/env python3
"""Names the code of the edges a plateau run found (docs/fuzzing.md, "Where the late edges are").

libFuzzer's `cov` counts the edges of every instrumented function: paygo's parsers, and also
the code of dependencies and of the standard library that the compiler placed in them (generic
and inlined code). A run started with FLAGS=-print_pcs=1 (plateau.py) logs the address of each
new edge with the running second it was found at; this script turns the addresses into
file:line with llvm-symbolizer and sorts the edges found after the kept corpus was loaded by
where their code is:

    paygo        crates/paygo-*: the code under test
    harness      fuzz/fuzz_targets: the target's own checks
    dependency   a crate from the registry (serde_json, rust_decimal, chrono, ...)
    std          the standard library (core, alloc, std), inlined or monomorphized in the above
    threads      std's channels, locks and thread code (or std code inlined into them): their
                 branches follow how threads are scheduled, not the input
    hashing      hashbrown's probing (HashMap): with std's randomly seeded hasher its branches
                 follow the seed of each map, not the input

The last two are found again and again by chance, so they keep `cov` rising when the input
can reach nothing new; the script says when an edge of the other kinds was last found.

    python3 newpcs.py corpus/usage.log ...          # a summary per log
    VERBOSE=1 python3 newpcs.py corpus/usage.log    # and every new edge that follows the input

An edge's place is its innermost source frame (where the branch is); the verbose list also
names the paygo function a std or dependency branch was inlined into.
"""
import os
import pathlib
import re
import subprocess
import sys

new_pc = re.compile(r"^(\d+) \tNEW_PC: (0x[0-9a-f]+)")
inited = re.compile(r"^(\d+) #\d+\s+INITED")
threads = re.compile(r"library/std/src/(sync|thread|sys/sync|sys/pal/unix/thread)|/parking_lot|/crossbeam")


def place(path):
    if "/hashbrown" in path:
        return "hashing"
    if "/crates/paygo-" in path:
        return "paygo"
    if "/fuzz_targets/" in path:
        return "harness"
    if "/.cargo/registry/" in path or "/.cargo/git/" in path:
        return "dependency"
    if path.startswith("/rustc/") or "/library/" in path:
        return "threads" if threads.search(path) else "std"
    return "other"


# The kinds whose edges are the code under test: what PLATEAU=own (plateau.py) watches.
OWN = ("paygo", "harness")


def kind(stack):
    """The kind of an edge's code, from its inlined frames (innermost first)."""
    where = place(stack[0][1]) if stack else "other"
    if where == "std":
        # A std branch is the threads' when it was inlined from std's thread code: the
        # frames out from it, while they are std's, include a channel, lock or thread.
        for _, line in stack:
            if place(line) == "threads":
                where = "threads"
            if place(line) not in ("std", "threads"):
                break
    return where


def parse(block):
    """(function, file:line) pairs of one address's llvm-symbolizer answer."""
    lines = block.strip("\n").split("\n")
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]


def frames(binary, offsets):
    """Inlined frames (function, file:line) of each offset, innermost first."""
    out = subprocess.run(["llvm-symbolizer", f"--obj={binary}"], text=True, capture_output=True,
                         input="".join(f"0x{o:x}\n" for o in offsets), check=True).stdout
    return [parse(block) for block in out.strip("\n").split("\n\n")]


def report(log):
    text = pathlib.Path(log).read_text(errors="replace").splitlines()
    head = next((l for l in text if " load base " in l), None)
    if head is None:
        print(f"{log}: no load base (not a plateau.py log of this version)")
        return
    _, _, _, base, binary, *built = head.split()
    if built and int(built[0]) != os.stat(binary).st_mtime_ns:
        # The addresses are the old build's: symbolized against the new one, they would
        # name the wrong code.
        print(f"{log}: {binary} was rebuilt since this run; its edges cannot be named")
        return
    base = int(base, 16)
    start = next((int(m[1]) for m in map(inited.match, text) if m), 0)
    found = [(int(m[1]), int(m[2], 16) - base) for m in map(new_pc.match, text) if m]
    late = [(t, o) for t, o in found if t > start] if start else found
    names = frames(binary, [o for _, o in late]) if late else []
    counts, last, listed = {}, {}, []
    for (t, _), stack in zip(late, names):
        where = kind(stack)
        counts[where] = counts.get(where, 0) + 1
        last[where] = max(last.get(where, 0), t)
        owner = next((s for s in stack if place(s[1]) == "paygo"), None)
        if where not in ("threads", "hashing"):
            listed.append((t, where, stack[0] if stack else ("?", "?"), owner))
    end = max((int(l.split(" ", 1)[0]) for l in text if l[:1].isdigit()), default=0)
    target = pathlib.Path(binary).name
    print(f"{target}: corpus loaded at {start} s, ran to {end} s; {len(found) - len(late)} edges "
          f"from the kept corpus, {len(late)} new")
    for where in ("paygo", "harness", "dependency", "std", "threads", "hashing", "other"):
        if where in counts:
            print(f"  {where:10} {counts[where]:5} new, the last at {last[where]} s")
    inlined = sum(1 for p in listed if p[1] != "paygo" and p[3])
    if inlined:
        print(f"  ({inlined} of the std and dependency edges are inlined into paygo functions)")
    driven = max((last[w] for w in ("paygo", "harness", "dependency", "std", "other") if w in last),
                 default=start)
    print(f"  edges that follow the input: the last found at {driven} s, none in the last "
          f"{end - driven} s")
    own = max((last[w] for w in OWN if w in last), default=start)
    print(f"  edges in paygo's code or the harness: the last found at {own} s, none in the last "
          f"{end - own} s")
    if os.environ.get("VERBOSE"):
        for t, where, (fn, line), owner in listed:
            into = f"  [in {owner[0]} {short(owner[1])}]" if owner and where != "paygo" else ""
            print(f"    {t:6} s  {where:5} {fn} {short(line)}{into}")


def short(path):
    return re.sub(r"^.*/(crates/|library/)", r"\1", path)


if __name__ == "__main__":
    for log in sys.argv[1:]:
        report(log)
