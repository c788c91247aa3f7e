#!/usr/bin/env python3
"""Writes the libFuzzer dictionaries of the JSON catalog targets (docs/fuzzing.md, "Dictionaries").

A catalog is JSON whose keys name prices (`input_cost_per_token_above_200k_tokens`), modes
and fields; random byte mutations rarely spell one. A dictionary hands libFuzzer the words
to insert: every quoted word of the parser's source that names a key or a value, the keys
and short values of the committed seeds, and the JSON pieces that join them. Run from the
repository's root after a parser learns new words, and commit fuzz/dicts/:

    python3 fuzz/dicts.py

plateau.py and .ci/run pass fuzz/dicts/<target>.dict to a target that has one.
"""
import glob
import json
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
word = re.compile(r'"([A-Za-z0-9_./-]+)"')
joins = ['{"', '":', '":"', '","', '":{', '":[', '},', '[{', "null", "true", "false",
         "1e-06", "0.000001", "-1", "1e400"]
targets = {
    "price_catalog_litellm": (
        "LiteLLM's catalog keys, price-key bases and modifiers, mode and provider names",
        ["crates/paygo-pricing/src/litellm/mod.rs", "crates/paygo-pricing/src/litellm/grammar.rs"],
        # Modifiers the grammar builds from pieces rather than spells whole.
        ["_above_", "_tokens", "_above_1hr", "_above_12hr", "_batches", "_flex", "_priority",
         "_ultrafast", "_balanced", "_720p", "_4k", "_1K", "_0.5K", "_1024", "k"]),
    "price_catalog_paygo": (
        "paygo's catalog fields, component, mode and usage-shape names",
        [f"crates/paygo-pricing/src/{name}.rs" for name in ("file", "component", "spec", "shape", "book")],
        []),
}


def seed_words(value, found):
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            seed_words(inner, found)
    elif isinstance(value, list):
        for inner in value:
            seed_words(inner, found)
    elif isinstance(value, str) and len(value) < 40:
        found.add(value)


def quoted(text):
    """A dictionary entry: the text in double quotes, with libFuzzer's escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


for target, (about, sources, extra) in targets.items():
    words = set(extra)
    for source in sources:
        words |= set(word.findall((root / source).read_text()))
    for seed in glob.glob(str(root / "fuzz/seeds" / target / "*")):
        try:
            seed_words(json.loads(pathlib.Path(seed).read_text()), words)
        except ValueError:
            pass
    words = sorted(w for w in words if 0 < len(w) <= 64)
    lines = [f"# {target}: {about}.", "# Written by fuzz/dicts.py: do not edit by hand."]
    lines += [quoted(f'"{w}"') for w in words] + [quoted(j) for j in joins]
    (root / "fuzz/dicts" / f"{target}.dict").write_text("\n".join(lines) + "\n")
    print(f"{target}: {len(words)} words")
