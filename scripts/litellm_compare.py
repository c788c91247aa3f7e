#!/usr/bin/env python3
"""Compare paygo's quotes with LiteLLM's own cost functions on random usages of every catalog entry.

Opt-in: it needs `pip install litellm` (developed against 1.110.2) and skips, exit 0, with a
message when litellm cannot be imported (`--require-litellm` turns the skip into a failure).

    python3 scripts/litellm_compare.py CATALOG.json [--paygo-cmd "target/release/examples/quote"]
        [--seed 1] [--cases N] [--models REGEX] [--examples 2] [--json-out FILE]

For every entry of the catalog (aliases included, `sample_spec` and non-model keys excluded) it
generates seeded random usages for the entry's mode and for every priced feature the entry has:
plain, cached, 5m/1h/12h cache writes, reasoning, audio/image/video tokens, cached audio/image,
each long-context threshold (at it and above it), every service tier the entry prices
(`_flex`, `_priority`, `fast`, `_ultrafast`, `_balanced`, `_batches`, combined with long
context), off-peak windows (inside, outside and at the window boundaries), images by size and
quality, video seconds by resolution, speech characters, transcription seconds, rerank search
units and tokens, search queries, OCR pages (batch too), realtime seconds and text messages,
per-second (`cost_per_second`) calls, and usage objects in the Anthropic, OpenAI Responses and
Gemini shapes. LiteLLM prices each case with the function its own `completion_cost` reaches for
that mode (`cost_per_token` for tokens, the batch calculator for `_batches`, the image, video,
OCR, search and rerank calculators), with the catalog installed as LiteLLM's cost map and the
billing moment pinned to the case's `at`. paygo prices the same case through the `quote`
example (one JSON line per case).

The two answers are compared exactly: LiteLLM's float is read as the Decimal of its repr and
set against paygo's exact decimal: `equal`, `float_noise` (relative difference <= 1e-9),
or a difference, classified by (mode, kind of usage, outcome). The summary table counts each
class; a few examples of every class that is not equal follow.

The mapping from a generated case to paygo's usage object is `paygo_input()`: the one place to
change when paygo's usage fields change.
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime as dt
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

# LiteLLM must never fetch its cost map over the network: the catalog under test is installed.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

UTC = dt.timezone.utc
# A Wednesday, 08:00 UTC: outside every off-peak window of the catalog (DeepSeek's weekday
# off-peak hours are 00:00-01:00, 04:00-06:00 and 10:00-24:00 UTC).
BASE_TIME = dt.datetime(2026, 1, 7, 8, 0, 0, tzinfo=UTC)
NOISE = Decimal("1e-9")
NOT_MODELS = {"sample_spec", "fallback_generalizations"}

# Service tiers LiteLLM applies through `service_tier` (utils.py:96-104): the name sent and the
# key suffix it reads. "fast" reads the `_priority` keys.
SYNC_TIERS = {"flex": "_flex", "priority": "_priority", "fast": "_priority", "ultrafast": "_ultrafast", "balanced": "_balanced"}

TOKEN_MODES = {"chat", "completion", "responses", "embedding", "realtime", "moderation", "evaluation",
               "extraction", "decisions", "guardrail", "vector_store", None}


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One priced call: the catalog entry, a kind label, and an abstract usage."""

    model: str            # the key paygo quotes (the catalog key, or the entry LiteLLM redirects it to)
    entry: dict           # the entry LiteLLM prices (alias resolved)
    mode: str
    kind: str
    u: dict               # abstract usage, see `token_case`
    tier: str | None = None   # None, a SYNC_TIERS name, or "batch"
    at: dt.datetime = BASE_TIME
    litellm_model: str = ""   # the name LiteLLM is called with
    provider: str = ""        # the provider LiteLLM is called with
    note: str = ""
    catalog_key: str = ""     # the catalog entry the case was generated for
    litellm_usd: Decimal | None = None
    litellm_error: str | None = None
    paygo_usd: Decimal | None = None
    paygo_error: str | None = None
    outcome: str = ""


def keys_with(entry: dict, prefix: str) -> list[str]:
    return [k for k in entry if k.startswith(prefix)]


def has(entry: dict, *keys: str) -> bool:
    return any(entry.get(k) is not None for k in keys)


def thresholds(entry: dict) -> list[int]:
    """Token thresholds of the entry's `_above_N[k]_tokens` keys (any suffix)."""
    found = set()
    for k in entry:
        m = re.search(r"_above_(\d+)(k?)_tokens", k)
        if m:
            found.add(int(m.group(1)) * (1000 if m.group(2) else 1))
    return sorted(found)


def tier_names(entry: dict) -> list[str]:
    names = []
    for name, suffix in SYNC_TIERS.items():
        if any(k.endswith(suffix) or (suffix + "_above_") in k for k in entry if "cost" in k):
            names.append(name)
    return names


def has_batch(entry: dict) -> bool:
    return any(k.endswith("_batches") and "cost" in k for k in entry)


def token_case(rng: random.Random, prompt: int | None = None, **parts: int) -> dict:
    """An abstract token usage, consistent by construction.

    Keys: prompt, completion (totals, OpenAI convention: they include every part), cached
    (cache reads, including cached_audio and cached_image), write_5m, write_1h, write_12h
    (cache writes by lifetime), audio_in, image_in, video_in (uncached modality prompt
    tokens), cached_audio, cached_image (subsets of cached), reasoning, audio_out, image_out,
    video_out (parts of completion).
    """
    text_out = parts.pop("text_out", None)  # 0 means "no completion" (embeddings), not "draw one"
    u = {k: v for k, v in parts.items() if v}
    prompt_parts = sum(u.get(k, 0) for k in ("cached", "write_5m", "write_1h", "write_12h", "audio_in", "image_in", "video_in"))
    text_in = rng.randint(1, 3000)
    u["prompt"] = max(prompt if prompt is not None else prompt_parts + text_in, prompt_parts)
    completion_parts = sum(u.get(k, 0) for k in ("reasoning", "audio_out", "image_out", "video_out"))
    u["completion"] = completion_parts + (rng.randint(0, 2000) if text_out is None else text_out)
    return u


def n(rng: random.Random, lo: int = 1, hi: int = 2000) -> int:
    return rng.randint(lo, hi)


def off_peak_times(entry: dict, rng: random.Random) -> list[tuple[str, dt.datetime]]:
    """Instants inside, outside and at the edges of the entry's off-peak windows."""
    block = entry.get("off_peak_pricing")
    if not isinstance(block, dict):
        return []
    out: list[tuple[str, dt.datetime]] = []
    windows = []
    hours = block.get("hours_utc")
    for w in ([hours] if isinstance(hours, str) else hours or []):
        windows.append((w, None))
    for rule in block.get("windows") or []:
        hs = rule.get("hours_utc")
        for w in ([hs] if isinstance(hs, str) else hs or []):
            windows.append((w, rule.get("weekdays")))
    monday = dt.datetime(2026, 1, 5, tzinfo=UTC)
    eps = dt.timedelta(milliseconds=1)
    for w, days in windows:
        try:
            a, b = w.split("-")
            sh, sm = map(int, a.split(":"))
            eh, em = map(int, b.split(":"))
        except ValueError:
            continue
        weekday = days[0] if isinstance(days, list) and days and isinstance(days[0], int) else 3  # ISO, default Wednesday
        base = monday + dt.timedelta(days=weekday - 1)
        start = base.replace(hour=sh, minute=sm)
        end = base.replace(hour=eh, minute=em)
        out += [(f"off_peak_start {w}", start), (f"off_peak_before_start {w}", start - eps),
                (f"off_peak_end {w}", end), (f"off_peak_before_end {w}", end - eps)]
    for _ in range(4):
        out.append(("off_peak_random", monday + dt.timedelta(seconds=rng.randint(0, 14 * 86400 - 1))))
    # A UTC Friday evening is a Saturday in Asia/Shanghai (weekday_timezone).
    out.append(("off_peak_friday_16utc", dt.datetime(2026, 1, 9, 16, 30, tzinfo=UTC)))
    out.append(("off_peak_sunday_16utc", dt.datetime(2026, 1, 11, 16, 30, tzinfo=UTC)))
    return out


def token_cases(key: str, entry: dict, mode: str, rng: random.Random, per_kind: int) -> list[Case]:
    """Chat-like usages for every priced feature of a token-priced entry."""
    cases: list[Case] = []

    def add(kind: str, u: dict, tier: str | None = None, at: dt.datetime = BASE_TIME, note: str = "") -> None:
        cases.append(Case(model=key, entry=entry, mode=mode, kind=kind, u=u, tier=tier, at=at, note=note))

    for _ in range(per_kind):
        add("text", token_case(rng))
    if mode == "embedding":
        for _ in range(per_kind):
            add("embedding_input_only", token_case(rng, text_out=0))
    if has(entry, "cache_read_input_token_cost", "input_cost_per_token_cache_hit") or entry.get("supports_prompt_caching"):
        add("cached", token_case(rng, cached=n(rng)))
    if has(entry, "cache_creation_input_token_cost"):
        add("cache_write_5m", token_case(rng, write_5m=n(rng)))
    if has(entry, "cache_creation_input_token_cost_above_1hr"):
        add("cache_write_1h", token_case(rng, write_5m=n(rng, 0), write_1h=n(rng)))
    if has(entry, "cache_creation_input_token_cost_above_12hr"):
        add("cache_write_12h", token_case(rng, write_12h=n(rng)))
    if has(entry, "output_cost_per_reasoning_token") or entry.get("supports_reasoning"):
        add("reasoning", token_case(rng, reasoning=n(rng)))
    if has(entry, "input_cost_per_audio_token"):
        add("audio_in", token_case(rng, audio_in=n(rng)))
    if has(entry, "output_cost_per_audio_token"):
        add("audio_out", token_case(rng, audio_out=n(rng)))
    if has(entry, "cache_read_input_audio_token_cost"):
        ca = n(rng)
        add("cached_audio", token_case(rng, cached=ca + n(rng, 0, 500), cached_audio=ca, audio_in=n(rng, 0)))
    if has(entry, "cache_creation_input_audio_token_cost"):
        add("cache_write_audio", token_case(rng, write_5m=n(rng), audio_in=n(rng)), note="audio cache write: no usage field distinguishes it")
    if has(entry, "input_cost_per_image_token"):
        add("image_in", token_case(rng, image_in=n(rng)))
    if has(entry, "cache_read_input_image_token_cost"):
        ci = n(rng)
        add("cached_image", token_case(rng, cached=ci + n(rng, 0, 500), cached_image=ci, image_in=n(rng, 0)))
    if has(entry, "output_cost_per_image_token"):
        add("image_out", token_case(rng, image_out=n(rng)))
    if has(entry, "input_cost_per_video_token"):
        add("video_in", token_case(rng, video_in=n(rng)))
    if has(entry, "output_cost_per_video_token"):
        add("video_out", token_case(rng, video_out=n(rng)))
    # No "explicit_cache_read" kind: LiteLLM bills `explicit_cache_read_input_token_cost` when the
    # usage says `cache_type: "ephemeral"`, but paygo's usage has no field that tells explicit
    # cache reads from ordinary ones (an unknown field is ignored), and its import reports the key
    # as not understood. Such a case could only compare LiteLLM's explicit rate with paygo's
    # ordinary cache-read rate; the ordinary cached case of the same entries is compared above.
    if has(entry, "citation_cost_per_token"):
        add("citations", token_case(rng) | {"citation_tokens": n(rng)})
    for limit in thresholds(entry):
        add(f"at_threshold_{limit}", token_case(rng, prompt=limit))
        add(f"above_threshold_{limit}", token_case(rng, prompt=limit + 1))
        add(f"above_threshold_{limit}_cached", token_case(rng, prompt=limit + n(rng, 1, 50000), cached=n(rng, 1, limit // 2 or 1), reasoning=n(rng, 0)))
    tiered = entry.get("tiered_pricing")
    if isinstance(tiered, list):
        for t in tiered:
            r = t.get("range")
            if isinstance(r, list) and len(r) == 2:
                lo, hi = int(r[0]), int(r[1])
                add(f"tiered_range_{lo}", token_case(rng, prompt=lo + 1, reasoning=n(rng, 0), cached=n(rng, 0, 1) if lo + 1 > 2 else 0))
                add(f"tiered_range_end_{hi}", token_case(rng, prompt=hi))
    for tier in tier_names(entry):
        add(f"tier_{tier}", token_case(rng, cached=n(rng, 0)), tier=tier)
        add(f"tier_{tier}_reasoning", token_case(rng, reasoning=n(rng)), tier=tier)
        if has(entry, "input_cost_per_audio_token"):
            add(f"tier_{tier}_audio", token_case(rng, audio_in=n(rng)), tier=tier)
        if has(entry, "cache_creation_input_token_cost"):
            add(f"tier_{tier}_cache_write", token_case(rng, write_5m=n(rng), write_1h=n(rng, 0)), tier=tier)
        for limit in thresholds(entry):
            add(f"tier_{tier}_above_{limit}", token_case(rng, prompt=limit + n(rng, 1, 50000), cached=n(rng, 0, 1000)), tier=tier)
    if has_batch(entry):
        add("batch", token_case(rng, cached=n(rng, 0)), tier="batch")
        add("batch_reasoning", token_case(rng, reasoning=n(rng)), tier="batch")
        add("batch_cache_write", token_case(rng, write_5m=n(rng), write_1h=n(rng, 0)), tier="batch")
        if has(entry, "input_cost_per_audio_token", "input_cost_per_audio_token_batches"):
            add("batch_audio", token_case(rng, audio_in=n(rng)), tier="batch")
        if has(entry, "output_cost_per_image_token"):
            add("batch_image_out", token_case(rng, image_out=n(rng)), tier="batch")
        for limit in thresholds(entry):
            add(f"batch_above_{limit}", token_case(rng, prompt=limit + n(rng, 1, 50000)), tier="batch")
    for label, at in off_peak_times(entry, rng):
        add(label.split(" ")[0], token_case(rng, cached=n(rng, 0), reasoning=n(rng, 0)), at=at, note=label)
    if entry.get("off_peak_pricing") and tier_names(entry):
        add("off_peak_with_tier", token_case(rng), tier=tier_names(entry)[0], at=BASE_TIME.replace(hour=12))
    # Upstream usage shapes, priced by LiteLLM after its own conversion.
    provider = str(entry.get("litellm_provider", ""))
    if provider in ("anthropic", "bedrock", "vertex_ai-anthropic_models", "bedrock_converse") or "claude" in key:
        for _ in range(max(1, per_kind // 2)):
            add("shape_anthropic", token_case(rng, cached=n(rng, 0), write_5m=n(rng, 0), write_1h=n(rng, 0)) | {"shape": "anthropic"})
        add("shape_anthropic_no_cache", token_case(rng) | {"shape": "anthropic"})
    if mode == "responses" or provider in ("openai", "azure"):
        add("shape_responses", token_case(rng, cached=n(rng, 0), reasoning=n(rng, 0)) | {"shape": "responses"})
    if provider == "gemini" or provider.startswith("vertex_ai-language") or "gemini" in key:
        add("shape_gemini", token_case(rng, cached=n(rng, 0), reasoning=n(rng, 0)) | {"shape": "gemini"})
        if has(entry, "input_cost_per_audio_token"):
            add("shape_gemini_audio", token_case(rng, audio_in=n(rng), reasoning=n(rng, 0)) | {"shape": "gemini"})
    # Per-second billing of chat-like entries without token prices (`cost_per_second`: the call's
    # running time, paygo's `call_duration_ms`). Only `cost_per_second` entries: a realtime
    # entry's `input_cost_per_second` is a second of session audio, paygo's `input_second`, which
    # the realtime_seconds kind below compares (LiteLLM's wall-clock path skips realtime rows).
    if has(entry, "cost_per_second") and mode in TOKEN_MODES:
        add("call_seconds", token_case(rng) | {"call_ms": n(rng, 1, 120_000)})
    if has(entry, "input_cost_per_text_message"):
        add("realtime_text_messages", {"prompt": 0, "completion": 0, "text_messages": n(rng, 1, 50)})
    if mode == "realtime" and has(entry, "input_cost_per_second"):
        add("realtime_seconds", {"prompt": 0, "completion": 0, "session_ms": n(rng, 1, 600_000)})
    return cases


SIZED_KEY = re.compile(r"^(?:(?P<prov>[a-z_]+)/)?(?:(?P<quality>[a-z]+)/)?(?P<size>\d+-x-\d+)/(?:(?P<steps>[a-z0-9-]+-steps)/)?(?P<model>.+)$")


def image_cases(key: str, entry: dict, mode: str, rng: random.Random, per_kind: int) -> list[Case]:
    cases: list[Case] = []

    def add(kind: str, u: dict, note: str = "") -> None:
        cases.append(Case(model=key, entry=entry, mode=mode, kind=kind, u=u, note=note))

    m = SIZED_KEY.match(key)
    if m:
        size = m.group("size").replace("-x-", "x")
        add("image_sized_entry", {"images": n(rng, 1, 4), "image_size": size, "image_quality": m.group("quality")})
    else:
        for _ in range(per_kind):
            add("image_default", {"images": n(rng, 1, 4)})
        for q in ("low", "medium", "high", "standard", "hd"):
            if any(k.startswith(f"{q}/") or f"/{q}/" in k for k in SIZED_INDEX.get(key, [])):
                for s in sorted({SIZED_KEY.match(k).group("size") for k in SIZED_INDEX[key] if SIZED_KEY.match(k)}):
                    add("image_size_quality", {"images": n(rng, 1, 4), "image_size": s.replace("-x-", "x"), "image_quality": q})
        res_keys = sorted(k[len("output_cost_per_image_"):] for k in entry if re.fullmatch(r"output_cost_per_image_(\d+(\.\d+)?K?|\d+)", k))
        for r in res_keys:
            add("image_resolution", {"images": n(rng, 1, 4), "image_resolution": r})
            if r.endswith("K"):
                add("image_resolution_lowercase", {"images": n(rng, 1, 4), "image_resolution": r.lower()})
        if res_keys:
            add("image_resolution_quality_high", {"images": n(rng, 1, 4), "image_resolution": res_keys[0].lower(), "image_quality": "high"})
        if has(entry, "input_cost_per_pixel", "output_cost_per_pixel"):
            add("image_pixels_sized", {"images": n(rng, 1, 4), "image_size": rng.choice(["512x512", "1024x1024", "1024x768"])})
        if has(entry, "output_cost_per_image_token", "input_cost_per_image_token") or (has(entry, "input_cost_per_token") and not has(entry, "output_cost_per_image", "input_cost_per_image")):
            for _ in range(per_kind):
                add("image_tokens", {"images": n(rng, 1, 2), "prompt": n(rng), "image_in": 0, "completion": n(rng, 1, 8000)})
            add("image_tokens_with_input_images", {"images": 1, "prompt": n(rng, 500, 3000), "image_in": n(rng, 1, 400), "completion": n(rng, 1, 8000)})
    return cases


def other_cases(key: str, entry: dict, mode: str, rng: random.Random, per_kind: int) -> list[Case]:
    cases: list[Case] = []

    def add(kind: str, u: dict, tier: str | None = None) -> None:
        cases.append(Case(model=key, entry=entry, mode=mode, kind=kind, u=u, tier=tier))

    if mode == "audio_speech":
        for _ in range(per_kind):
            if has(entry, "input_cost_per_character"):
                add("speech_characters", {"characters": n(rng, 1, 5000)})
            else:
                add("speech_tokens", token_case(rng, audio_out=n(rng)))
    elif mode == "audio_transcription":
        for _ in range(per_kind):
            add("transcription_seconds", {"audio_ms": n(rng, 1, 3_600_000)})
        if has(entry, "input_cost_per_token", "output_cost_per_token", "input_cost_per_audio_token"):
            add("transcription_tokens", token_case(rng, audio_in=n(rng)))
    elif mode == "video_generation":
        labels = [k[len("output_cost_per_second_"):] for k in entry if k.startswith("output_cost_per_second_")]
        for _ in range(per_kind):
            add("video_default", {"video_ms": 1000 * n(rng, 1, 20)})
        for label in labels:
            add("video_resolution", {"video_ms": 1000 * n(rng, 1, 20), "video_resolution": label})
            add("video_resolution_upper", {"video_ms": 1000 * n(rng, 1, 20), "video_resolution": label.upper()})
        add("video_pixel_size", {"video_ms": 1000 * n(rng, 1, 20), "video_resolution": rng.choice(["1280x720", "1920x1080"])})
    elif mode == "rerank":
        for _ in range(per_kind):
            add("rerank_search_units", {"search_units": n(rng, 1, 20)})
            add("rerank_tokens", {"rerank_tokens": n(rng, 1, 20000)})
    elif mode == "search":
        for _ in range(per_kind):
            add("search_queries", {"queries": n(rng, 1, 5)})
        # No search_max_results kinds: `tiered_pricing` by `max_results_range` prices a search
        # by the number of results asked for, and paygo's usage has no `max_results` field (an
        # unknown field is ignored, so the case would silently become a plain query count).
    elif mode == "ocr":
        for _ in range(per_kind):
            add("ocr_pages", {"pages": n(rng, 1, 500), "annotation_pages": n(rng, 0, 50) if has(entry, "annotation_cost_per_page") else 0})
        if has(entry, "ocr_cost_per_page_batches", "annotation_cost_per_page_batches"):
            add("ocr_pages_batch", {"pages": n(rng, 1, 500), "annotation_pages": n(rng, 0, 50)}, tier="batch")
        # No ocr_credits kind: `ocr_cost_per_credit` (Reducto) is priced per credit, and credits
        # are not a unit of paygo's usage (an unknown field is ignored, so the case would silently
        # become a page count on an entry without a page price).
    return cases


SIZED_INDEX: dict[str, list[str]] = {}


def build_sized_index(catalog: dict) -> None:
    """Base model -> its `[provider/][quality/]WxH/model` entries."""
    for key in catalog:
        m = SIZED_KEY.match(key)
        if m and not m.group("steps"):
            # Only the model of the same provider: `fal_ai/low/1024-x-768/gpt-image-2` sizes
            # `fal_ai/gpt-image-2`, not OpenAI's `gpt-image-2` (whose price book has no such rows).
            base = f"{m.group('prov')}/{m.group('model')}" if m.group("prov") else m.group("model")
            SIZED_INDEX.setdefault(base, []).append(key)


def generate(catalog: dict, lm_cost: dict, rng: random.Random, per_kind: int, pattern: re.Pattern | None) -> tuple[list[Case], list[str]]:
    build_sized_index(catalog)
    cases: list[Case] = []
    skipped: list[str] = []
    for key, raw in catalog.items():
        if key in NOT_MODELS or not isinstance(raw, dict) or (pattern and not pattern.search(key)):
            continue
        entry = lm_cost.get(key)
        if entry is None:
            skipped.append(f"{key}: not in LiteLLM's cost map after loading (alias to nothing?)")
            continue
        entry = dict(entry)
        mode = entry.get("mode")
        mode = mode if isinstance(mode, str) and " " not in mode else None
        local = random.Random(f"{rng.random()}:{key}")
        if mode in ("image_generation", "image_edit"):
            made = image_cases(key, entry, mode, local, per_kind)
        elif mode in ("audio_speech", "audio_transcription", "video_generation", "rerank", "search", "ocr"):
            made = other_cases(key, entry, mode, local, per_kind)
        else:
            made = token_cases(key, entry, mode or "none", local, per_kind)
        if not made:
            skipped.append(f"{key}: no case generated for mode {mode}")
        for c in made:
            c.provider = routing_provider(entry)
            c.catalog_key = key
            if "alias_of" in raw:
                c.note = (c.note + f" alias_of {raw['alias_of']}").strip()
        cases += made
    return cases, skipped


def routing_provider(entry: dict) -> str:
    """The provider a LiteLLM call for this entry carries (the `vertex_ai-*` catalog groups route as `vertex_ai`)."""
    p = str(entry.get("litellm_provider") or "")
    return "vertex_ai" if p.startswith("vertex_ai") else p


# ----------------------------------------------------------------------------------------------
# paygo's usage: THE mapping from a generated case to paygo's quote input (change it here)
# ----------------------------------------------------------------------------------------------

def paygo_input(c: Case) -> dict:
    """The `quote` input line for a case.

    Conventions it states (see /work/notes/litellm-conventions.md):
    - tokens: OpenAI Chat shape; cached/cache-write/audio/image/video counts are parts of
      prompt_tokens; cached audio/image tokens are sent as OpenAI (realtime) and LiteLLM write
      them: `prompt_tokens_details.cached_tokens_details.{audio,image}_tokens`, counted inside
      both `cached_tokens` and `audio_tokens`/`image_tokens` (the same object LiteLLM prices);
    - cache writes by lifetime: cache_write_tokens (5 min), cache_write_1h_tokens,
      cache_write_12h_tokens;
    - transcription: the audio file's length is the input duration (it feeds
      output_cost_per_second when that is > 0, else input_cost_per_second, as LiteLLM does);
    - video: output_video_duration_ms when the model prices output_cost_per_video_per_second,
      else output_duration_ms with video_resolution;
    - per-size image keys (`output_cost_per_image_1K`, `_512`): the label goes in image_size;
    - wall-clock billing (`cost_per_second`): call_duration_ms; realtime session seconds:
      input_duration_ms; xAI realtime text messages: text_messages;
    - upstream shapes: the raw upstream usage in `usage` and its name in `usage_shape`
      (paygo's names: openai_chat, openai_responses, anthropic, gemini);
    - every field written is one paygo reads (crates/paygo-pricing/src/usage.rs, shape.rs):
      paygo ignores unknown fields, so a field it lacks would silently drop a quantity. Case
      kinds whose quantity paygo has no field for are not generated (see their comments).
    """
    u = c.u
    line: dict[str, Any] = {"model": c.model, "at": c.at.isoformat().replace("+00:00", "Z")}
    if c.tier is not None:
        line["service_tier"] = c.tier
    shape = u.get("shape")
    if shape:
        line["usage"] = upstream_usage(u)
        line["usage_shape"] = PAYGO_SHAPE[shape]
        return line
    usage: dict[str, Any] = {}
    if "prompt" in u or "completion" in u:
        usage["prompt_tokens"] = u.get("prompt", 0)
        usage["completion_tokens"] = u.get("completion", 0)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        ptd: dict[str, Any] = {}
        for src, dst in (("cached", "cached_tokens"), ("write_5m", "cache_write_tokens"), ("write_1h", "cache_write_1h_tokens"),
                         ("write_12h", "cache_write_12h_tokens"), ("video_in", "video_tokens")):
            if u.get(src):
                ptd[dst] = u[src]
        # OpenAI counts cached audio/image inside audio_tokens/image_tokens and names them in
        # cached_tokens_details; paygo moves them out of both totals (shape.rs chat_prompt_details).
        for uncached, cached, dst in (("audio_in", "cached_audio", "audio_tokens"), ("image_in", "cached_image", "image_tokens")):
            if u.get(uncached) or u.get(cached):
                ptd[dst] = u.get(uncached, 0) + u.get(cached, 0)
        ctd_cached = {k: u[s] for s, k in (("cached_audio", "audio_tokens"), ("cached_image", "image_tokens")) if u.get(s)}
        if ctd_cached:
            ptd["cached_tokens_details"] = ctd_cached
        if ptd:
            usage["prompt_tokens_details"] = ptd
        ctd = {dst: u[src] for src, dst in (("reasoning", "reasoning_tokens"), ("audio_out", "audio_tokens"), ("image_out", "image_tokens"), ("video_out", "video_tokens")) if u.get(src)}
        if ctd:
            usage["completion_tokens_details"] = ctd
    if c.mode in ("image_generation", "image_edit") and u.get("images"):
        usage["output_images"] = u["images"]
        usage["image_size"] = u.get("image_size") or u.get("image_resolution") or "1024x1024"
        if u.get("image_quality"):
            usage["image_quality"] = u["image_quality"]
        if "prompt" in u and u.get("completion") and "image_out" not in u:
            # LiteLLM reads image usage without output details as image tokens (utils.py:2154).
            usage["completion_tokens_details"] = {"image_tokens": u["completion"]}
    simple = {"characters": "input_characters", "pages": "pages", "annotation_pages": "annotation_pages",
              "queries": "queries", "search_units": "queries",
              "citation_tokens": "citation_tokens", "text_messages": "text_messages", "call_ms": "call_duration_ms",
              "session_ms": "input_duration_ms", "audio_ms": "input_duration_ms"}
    for src, dst in simple.items():
        if u.get(src):
            usage[dst] = u[src]
    if u.get("rerank_tokens"):
        usage["prompt_tokens"] = u["rerank_tokens"]
    if u.get("video_ms"):
        if c.entry.get("output_cost_per_video_per_second") is not None:
            usage["output_video_duration_ms"] = u["video_ms"]
        else:
            usage["output_duration_ms"] = u["video_ms"]
        if u.get("video_resolution"):
            usage["video_resolution"] = u["video_resolution"]
    line["usage"] = usage
    return line


# The harness's shape labels -> paygo's `usage_shape` names (UsageShape in shape.rs).
PAYGO_SHAPE = {"anthropic": "anthropic", "responses": "openai_responses", "gemini": "gemini"}


def upstream_usage(u: dict) -> dict:
    """The usage object the upstream itself returns, for the shape cases."""
    shape = u["shape"]
    if shape == "anthropic":
        writes = u.get("write_5m", 0) + u.get("write_1h", 0)
        out: dict[str, Any] = {"input_tokens": u["prompt"] - u.get("cached", 0) - writes, "output_tokens": u["completion"]}
        if u.get("cached") or writes:
            out["cache_read_input_tokens"] = u.get("cached", 0)
            out["cache_creation_input_tokens"] = writes
            out["cache_creation"] = {"ephemeral_5m_input_tokens": u.get("write_5m", 0), "ephemeral_1h_input_tokens": u.get("write_1h", 0)}
        return out
    if shape == "responses":
        return {"input_tokens": u["prompt"], "output_tokens": u["completion"], "total_tokens": u["prompt"] + u["completion"],
                "input_tokens_details": {"cached_tokens": u.get("cached", 0)},
                "output_tokens_details": {"reasoning_tokens": u.get("reasoning", 0)}}
    if shape == "gemini":
        # Gemini's candidatesTokenCount excludes thoughts; promptTokenCount includes cached content.
        details = [{"modality": "TEXT", "tokenCount": u["prompt"] - u.get("audio_in", 0)}]
        if u.get("audio_in"):
            details.append({"modality": "AUDIO", "tokenCount": u["audio_in"]})
        meta: dict[str, Any] = {"promptTokenCount": u["prompt"], "candidatesTokenCount": u["completion"] - u.get("reasoning", 0),
                                "totalTokenCount": u["prompt"] + u["completion"], "promptTokensDetails": details}
        if u.get("reasoning"):
            meta["thoughtsTokenCount"] = u["reasoning"]
        if u.get("cached"):
            meta["cachedContentTokenCount"] = u["cached"]
        return meta
    raise ValueError(shape)


# ----------------------------------------------------------------------------------------------
# LiteLLM's answer
# ----------------------------------------------------------------------------------------------

class LiteLLM:
    """LiteLLM's cost functions, with the catalog under test installed as its cost map."""

    def __init__(self, catalog: dict) -> None:
        import litellm  # noqa: F401  (import errors are handled by the caller)
        from litellm import cost_calculator as cc
        from litellm._internal_context import pinned_billing_time
        from litellm.litellm_core_utils.get_model_cost_map import _finalize_model_cost_map, adopt_model_cost_map
        from litellm.types import utils as tu

        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        import logging
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        adopt_model_cost_map(_finalize_model_cost_map(copy.deepcopy(catalog)))
        for module in (litellm.utils, cc):
            for obj in vars(module).values():
                if callable(getattr(obj, "cache_clear", None)):
                    obj.cache_clear()
        self.litellm = litellm
        self.cc = cc
        self.tu = tu
        self.pin = pinned_billing_time
        self.version = getattr(litellm, "__version__", None) or _dist_version()

    def cost_map(self) -> dict:
        return self.litellm.model_cost

    def lookup_key(self, c: Case) -> str:
        """The cost-map entry `cost_per_token(model=key, custom_llm_provider=p)` resolves (cost_calculator.py:662-697)."""
        key, p = c.model, c.provider
        with_provider = key if key.startswith(f"{p}/") else f"{p}/{key}"
        return with_provider if with_provider in self.litellm.model_cost else key

    def usage(self, u: dict):
        tu = self.tu
        shape = u.get("shape")
        if shape == "anthropic":
            return self.litellm.AnthropicConfig().calculate_usage(usage_object=upstream_usage(u), reasoning_content=None)
        if shape == "responses":
            from litellm.responses.utils import ResponseAPILoggingUtils
            return ResponseAPILoggingUtils.transform_response_api_usage_to_chat_usage(upstream_usage(u))
        if shape == "gemini":
            from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import VertexGeminiConfig
            return VertexGeminiConfig._calculate_usage({"usageMetadata": upstream_usage(u)})
        ptd: dict[str, Any] = {}
        if u.get("cached"):
            ptd["cached_tokens"] = u["cached"]
            cd = {k: u[s] for s, k in (("cached_audio", "audio_tokens"), ("cached_image", "image_tokens")) if u.get(s)}
            if cd:
                cd["text_tokens"] = u["cached"] - u.get("cached_audio", 0) - u.get("cached_image", 0)
                ptd["cached_tokens_details"] = tu.CachedTokensDetails(**cd)
        writes = u.get("write_5m", 0) + u.get("write_1h", 0) + u.get("write_12h", 0)
        if writes:
            ptd["cache_creation_tokens"] = writes
            if u.get("write_1h") or u.get("write_12h"):
                ptd["cache_creation_token_details"] = tu.CacheCreationTokenDetails(
                    ephemeral_5m_input_tokens=u.get("write_5m", 0), ephemeral_1h_input_tokens=u.get("write_1h", 0),
                    ephemeral_12h_input_tokens=u.get("write_12h", 0))
        if u.get("audio_in") or u.get("cached_audio"):
            ptd["audio_tokens"] = u.get("audio_in", 0) + u.get("cached_audio", 0)  # OpenAI: includes cached audio
        if u.get("image_in") or u.get("cached_image"):
            ptd["image_tokens"] = u.get("image_in", 0) + u.get("cached_image", 0)
        if u.get("video_in"):
            ptd["video_tokens"] = u["video_in"]
        if u.get("cache_type"):
            ptd["cache_type"] = u["cache_type"]
        ctd = {k: u[s] for s, k in (("reasoning", "reasoning_tokens"), ("audio_out", "audio_tokens"), ("image_out", "image_tokens"), ("video_out", "video_tokens")) if u.get(s)}
        usage = tu.Usage(
            prompt_tokens=u.get("prompt", 0), completion_tokens=u.get("completion", 0),
            total_tokens=u.get("prompt", 0) + u.get("completion", 0),
            prompt_tokens_details=tu.PromptTokensDetailsWrapper(**ptd) if ptd else None,
            completion_tokens_details=tu.CompletionTokensDetailsWrapper(**ctd) if ctd else None,
        )
        if u.get("citation_tokens"):
            usage.citation_tokens = u["citation_tokens"]
        return usage

    def price(self, c: Case) -> float:
        with self.pin(c.at):
            return float(self._price(c))

    def _price(self, c: Case) -> float:
        cc, u, model, p = self.cc, c.u, self.lookup_key(c), c.provider
        kind = c.kind
        if c.mode in ("image_generation", "image_edit"):
            return self._image(c, model, p)
        if c.mode == "video_generation":
            from litellm.llms.openai.cost_calculation import video_generation_cost
            res = u.get("video_resolution")
            return video_generation_cost(model=model, duration_seconds=u["video_ms"] / 1000, custom_llm_provider=p,
                                         video_resolution=None if res is None else str(res).strip().lower())
        if kind == "speech_characters":
            a, b = cc.cost_per_token(model=model, custom_llm_provider=p, call_type="speech", prompt_characters=u["characters"])
            return a + b
        if kind == "transcription_seconds":
            a, b = cc.cost_per_token(model=model, custom_llm_provider=p, call_type="transcription",
                                     usage_object=self.tu.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
                                     audio_transcription_file_duration=u["audio_ms"] / 1000)
            return a + b
        if kind.startswith("rerank"):
            units = {"search_units": u.get("search_units"), "total_tokens": u.get("rerank_tokens")}
            a, b = cc.cost_per_token(model=model, custom_llm_provider=p, call_type="rerank", rerank_billed_units=units)
            return a + b
        if kind.startswith("search"):
            from litellm.search import search_provider_cost_per_query
            params = {"max_results": u["max_results"]} if "max_results" in u else {}
            a, b = search_provider_cost_per_query(model=model, custom_llm_provider=p, number_of_queries=u["queries"], optional_params=params)
            return a + b
        if kind.startswith("ocr"):
            from litellm.llms.base_llm.ocr.transformation import OCRResponse, OCRUsageInfo
            info = OCRUsageInfo(pages_processed=u["pages"], pages_processed_annotation=u.get("annotation_pages") or None, credits=u.get("credits"))
            if c.tier == "batch":
                return cc.ocr_batch_cost(model=model, custom_llm_provider=p, usage_info=info)[0]
            resp = OCRResponse(pages=[], model=model, usage_info=info)
            return cc.ocr_cost(model=model, custom_llm_provider=p, response=resp)[0]
        if kind == "realtime_text_messages":
            return u["text_messages"] * cc._first_live_model_rate((model,), p, "input_cost_per_text_message")
        if kind == "realtime_seconds":
            return u["session_ms"] / 1000 * cc._first_live_model_rate((model,), p, "input_cost_per_second")
        usage = self.usage(u)
        call_type = {"embedding": "embedding", "responses": "responses", "decisions": "decisions"}.get(c.mode, "completion")
        if kind == "transcription_tokens":
            call_type = "transcription"
        if c.tier == "batch":
            a, b = cc.cost_per_token(model=model, custom_llm_provider=p, usage_object=usage, call_type="retrieve_batch")
            return a + b
        a, b = cc.cost_per_token(model=model, custom_llm_provider=p, usage_object=usage, service_tier=c.tier,
                                 call_type=call_type, response_time_ms=u.get("call_ms", 0.0))
        return a + b

    def _image(self, c: Case, model: str, p: str) -> float:
        tu, u = self.tu, c.u
        images = [tu.ImageObject(url="https://example.invalid/i.png") for _ in range(u.get("images", 1))]
        resp = tu.ImageResponse(data=images)
        if "prompt" in u:
            resp.usage = tu.ImageUsage(input_tokens=u["prompt"], output_tokens=u["completion"], total_tokens=u["prompt"] + u["completion"],
                                       input_tokens_details={"text_tokens": u["prompt"] - u.get("image_in", 0), "image_tokens": u.get("image_in", 0)})
        params: dict[str, Any] = {}
        if u.get("image_resolution"):
            params["resolution"] = u["image_resolution"]
        if u.get("image_quality"):
            params["quality"] = u["image_quality"]
        size = (u.get("image_size") or "").replace("x", "-x-") or None
        if u.get("image_size"):
            # The request parameters a real call logs: OpenAI-style `size`, fal's `image_size`.
            params["size"] = u["image_size"]
            w, _, h = u["image_size"].partition("x")
            if p == "fal_ai" and w.isdigit() and h.isdigit():
                params["image_size"] = {"width": int(w), "height": int(h)}
        # LiteLLM's image calls log the model without its provider prefix (get_llm_provider strips it).
        lm_model = model.removeprefix(f"{p}/")
        m = SIZED_KEY.match(model)
        if m:  # a sized entry is reached by its base model plus size and quality
            lm_model = m.group("model")
        def cost(name: str) -> float:
            return self.cc.completion_cost(completion_response=resp, model=name, custom_llm_provider=p, call_type=c.mode,
                                           size=size, quality=u.get("image_quality"), optional_params=params)

        try:
            return cost(lm_model)
        except Exception:  # noqa: BLE001
            if lm_model == model:
                raise
            # LiteLLM cannot find the entry under the name a real call logs: retry with the
            # catalog key and say so, so that the price itself is still compared.
            result = cost(model)
            c.note = (c.note + " litellm needs the provider-prefixed name").strip()
            return result


def _dist_version() -> str:
    try:
        from importlib.metadata import version
        return version("litellm")
    except Exception:  # noqa: BLE001
        return "?"


# ----------------------------------------------------------------------------------------------
# paygo's answer
# ----------------------------------------------------------------------------------------------

def run_paygo(cmd: list[str], catalog_path: str, lines: list[dict], cwd: str | None) -> tuple[list[dict], str]:
    payload = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    proc = subprocess.run([*cmd, "--prices", catalog_path], input=payload.encode(), capture_output=True, cwd=cwd)
    stderr = proc.stderr.decode(errors="replace")
    outputs = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    if proc.returncode != 0 or len(outputs) != len(lines):
        raise SystemExit(f"paygo quote failed (exit {proc.returncode}, {len(outputs)} output lines for {len(lines)} inputs):\n{stderr[-2000:]}")
    return outputs, stderr


# ----------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------

def classify(c: Case) -> str:
    lm, pg = c.litellm_usd, c.paygo_usd
    if c.litellm_error and c.paygo_error:
        return "both error"
    if c.litellm_error:
        return "litellm error"
    if c.paygo_error:
        return "paygo error, litellm $0" if lm == 0 else "paygo error, litellm >0"
    assert lm is not None and pg is not None
    if lm == pg:
        return "equal"
    scale = max(abs(lm), abs(pg))
    if abs(lm - pg) <= NOISE * scale:
        return "float noise"
    if lm == 0:
        return "differ: litellm $0"
    if pg == 0:
        return "differ: paygo $0"
    return "differ: paygo higher" if pg > lm else "differ: paygo lower"


OUTCOMES = ["equal", "float noise", "differ: paygo higher", "differ: paygo lower", "differ: litellm $0",
            "differ: paygo $0", "paygo error, litellm $0", "paygo error, litellm >0", "litellm error", "both error"]
SHORT = {"equal": "equal", "float noise": "noise", "differ: paygo higher": "pg>lm", "differ: paygo lower": "pg<lm",
         "differ: litellm $0": "lm=0", "differ: paygo $0": "pg=0", "paygo error, litellm $0": "pgErr,lm=0",
         "paygo error, litellm >0": "pgErr,lm>0", "litellm error": "lmErr", "both error": "bothErr"}


def kind_family(kind: str) -> str:
    """Groups thresholds and window instants so the table stays readable: above_threshold_200000 -> above_threshold_N."""
    return re.sub(r"\d+", "N", kind)


def summarize(cases: list[Case], examples: int) -> str:
    table: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for c in cases:
        table[(c.mode, kind_family(c.kind))][c.outcome] += 1
    cols = [o for o in OUTCOMES if any(t[o] for t in table.values())]
    header = ["mode", "kind", "n", *[SHORT[o] for o in cols]]
    rows = []
    for (mode, kind), counts in sorted(table.items()):
        rows.append([mode, kind, str(sum(counts.values())), *[str(counts[o] or "") for o in cols]])
    total = collections.Counter(c.outcome for c in cases)
    rows.append(["ALL", "", str(len(cases)), *[str(total[o] or "") for o in cols]])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))  # noqa: E731
    out = [fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows[:-1]), fmt(["-" * w for w in widths]), fmt(rows[-1])]
    out.append("")
    out.append("legend: " + ", ".join(f"{SHORT[o]} = {o}" for o in cols))
    if examples:
        out.append("")
        out.append("examples (up to %d per mode/kind/outcome that is not equal or noise):" % examples)
        seen: collections.Counter = collections.Counter()
        for c in cases:
            if c.outcome in ("equal", "float noise"):
                continue
            k = (c.mode, kind_family(c.kind), c.outcome)
            if seen[k] >= examples:
                continue
            seen[k] += 1
            lm = c.litellm_error or c.litellm_usd
            pg = c.paygo_error or c.paygo_usd
            tier = f" tier={c.tier}" if c.tier else ""
            at = f" at={c.at.isoformat()}" if c.at != BASE_TIME else ""
            note = f" ({c.note})" if c.note else ""
            out.append(f"- [{c.mode} / {c.kind} / {c.outcome}] {c.model}{tier}{at}{note}")
            out.append(f"    usage:   {json.dumps(c.u, sort_keys=True)}")
            out.append(f"    litellm: {lm}")
            out.append(f"    paygo:   {pg}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog", help="a LiteLLM catalog (model_prices_and_context_window.json)")
    ap.add_argument("--paygo-cmd", default="cargo run --release --quiet --example quote --",
                    help="the quote command, without --prices (default: %(default)s)")
    ap.add_argument("--cwd", default=None, help="directory to run the paygo command in (default: the repository of this script)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=2, help="random usages per plain kind and model (default 2)")
    ap.add_argument("--models", default=None, help="only catalog keys matching this regex")
    ap.add_argument("--examples", type=int, default=2, help="examples printed per class that is not equal (default 2)")
    ap.add_argument("--json-out", default=None, help="write every case with both answers to this file (JSON lines)")
    ap.add_argument("--require-litellm", action="store_true", help="fail instead of skipping when litellm is missing")
    args = ap.parse_args(argv)

    try:
        import litellm  # noqa: F401
    except Exception as e:  # noqa: BLE001
        print(f"SKIP: litellm is not importable ({e}); `pip install litellm` to run this comparison.")
        return 1 if args.require_litellm else 0

    with open(args.catalog, encoding="utf-8") as f:
        catalog = json.load(f)
    started = time.monotonic()
    lm = LiteLLM(catalog)
    cases, skipped = generate(catalog, lm.cost_map(), random.Random(args.seed), args.cases,
                              re.compile(args.models) if args.models else None)
    for c in cases:
        key = lm.lookup_key(c)
        if key != c.model and dict(lm.cost_map().get(key, {})) != dict(c.entry):
            # LiteLLM prices `provider/key` when it exists (cost_calculator.py:662-697): compare
            # paygo on the entry LiteLLM actually priced.
            c.note = (c.note + f" litellm prices {key}").strip()
            c.model = key
        c.litellm_model = key
        try:
            c.litellm_usd = Decimal(repr(lm.price(c)))
        except Exception as e:  # noqa: BLE001  (LiteLLM raises bare Exception for unpriced models)
            c.litellm_error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    lm_seconds = time.monotonic() - started

    cmd = shlex.split(args.paygo_cmd)
    cwd = args.cwd or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    started = time.monotonic()
    outputs, stderr = run_paygo(cmd, os.path.abspath(args.catalog), [paygo_input(c) for c in cases], cwd)
    pg_seconds = time.monotonic() - started
    for c, out in zip(cases, outputs):
        if "error" in out:
            c.paygo_error = out["error"]
        else:
            try:
                c.paygo_usd = Decimal(out["usd"])
            except (KeyError, InvalidOperation) as e:
                c.paygo_error = f"unreadable quote output {out!r}: {e}"
        c.outcome = classify(c)

    print(f"litellm {lm.version}, catalog {args.catalog}: {len({c.catalog_key for c in cases})} catalog entries, {len(cases)} cases "
          f"(seed {args.seed}); litellm {lm_seconds:.1f}s, paygo {pg_seconds:.1f}s")
    if stderr.strip():
        print("paygo: " + stderr.strip().splitlines()[-1])
    if skipped:
        print(f"{len(skipped)} catalog entries without cases: " + "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    print()
    print(summarize(cases, args.examples))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            for c in cases:
                f.write(json.dumps({"model": c.model, "mode": c.mode, "kind": c.kind, "tier": c.tier, "at": c.at.isoformat(),
                                    "usage": c.u, "paygo_input": paygo_input(c), "litellm": str(c.litellm_usd) if c.litellm_usd is not None else None,
                                    "litellm_error": c.litellm_error, "paygo": str(c.paygo_usd) if c.paygo_usd is not None else None,
                                    "paygo_error": c.paygo_error, "outcome": c.outcome, "note": c.note}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
