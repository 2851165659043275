"""Garbled queries, reproducibly: each condition is a named string, each garbling a pure seeded function.

Conditions (N is a whole number):
    clean           the query as written
    typo-N          N% of the letters and digits get one typing error each: an extra
                    keyboard-neighbour key, a missing key, a keyboard-neighbour key
                    instead, or two keys swapped (at least one error when N > 0)
    drop-N          N% of the words dropped (at least one word is kept)
    truncate-N      only the first N% of the words (at least one)
    first-N         only the first N words
    lower-nopunct   lower-cased, punctuation removed (hyphens and slashes become spaces)

The random stream of a query depends only on (seed, condition, query id), so a query's
garbled text does not change when other queries are added, removed or reordered.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import unicodedata
from dataclasses import dataclass

from eval.errors import EvalError

KINDS = ("clean", "typo", "drop", "truncate", "first", "lower-nopunct")
TYPO_OPS = ("insert", "delete", "substitute", "transpose")
_NAME = re.compile(r"^(typo|drop|truncate|first)-(\d+)$")
_WORD = re.compile(r"\w", re.UNICODE)

_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """QWERTY keys next to each key: same row left/right, and the staggered keys above and below."""
    where = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    out = {}
    for ch, (r, c) in where.items():
        near = []
        for dr, dc in ((0, -1), (0, 1), (-1, 0), (-1, 1), (1, -1), (1, 0)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < len(_ROWS) and 0 <= cc < len(_ROWS[rr]):
                near.append(_ROWS[rr][cc])
        out[ch] = "".join(near)
    return out


NEIGHBOURS = _keyboard_neighbours()


@dataclass(frozen=True)
class Condition:
    """A parsed condition: name as given (e.g. "typo-10"), kind, strength N (0 where none)."""

    name: str
    kind: str
    strength: int = 0


def parse_condition(name: str) -> Condition:
    """The Condition a name stands for; EvalError names the valid forms for anything else."""
    text = name.strip().lower()
    if text in ("clean", "lower-nopunct"):
        return Condition(text, text, 0)
    m = _NAME.match(text)
    if not m:
        raise EvalError(
            f"unknown condition {name!r}; use clean, lower-nopunct, typo-N, drop-N, truncate-N "
            "(N in 1..100, a percentage) or first-N (N words), e.g. typo-10"
        )
    kind, n = m.group(1), int(m.group(2))
    if kind != "first" and not 1 <= n <= 100:
        raise EvalError(f"condition {name!r}: N must be a percentage from 1 to 100")
    if kind == "first" and n < 1:
        raise EvalError(f"condition {name!r}: keep at least one word (first-1 or more)")
    return Condition(text, kind, n)


def parse_conditions(names: str | list[str]) -> list[Condition]:
    """Comma-separated (or listed) condition names, parsed, duplicates removed, order kept."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: dict[str, Condition] = {}
    for item in items:
        if item.strip():
            cond = parse_condition(item)
            out.setdefault(cond.name, cond)
    if not out:
        raise EvalError("no conditions given; e.g. --conditions clean,typo-10")
    return list(out.values())


def rng_for(seed: int, condition: str, qid: str) -> random.Random:
    """A random stream fixed by (seed, condition, query id); stable across runs and Python versions."""
    digest = hashlib.sha256(f"{seed}\x1f{condition}\x1f{qid}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _neighbour(ch: str, rng: random.Random) -> str:
    near = NEIGHBOURS.get(ch.lower())
    if not near:
        # Outside the QWERTY letters and digits (accented letters, other scripts): a random ASCII letter.
        return rng.choice("abcdefghijklmnopqrstuvwxyz")
    out = rng.choice(near)
    return out.upper() if ch.isupper() else out


def typos(text: str, percent: float, rng: random.Random, ops: tuple[str, ...] = TYPO_OPS) -> str:
    """percent% of the letters/digits (at least one when percent > 0) each get one random typing error.

    Errors are applied right to left so each lands on the character it was drawn for.
    """
    chars = list(text)
    slots = [i for i, ch in enumerate(chars) if ch.isalnum()]
    if not slots or percent <= 0:
        return text
    n = min(len(slots), max(1, round(len(slots) * percent / 100)))
    for i in sorted(rng.sample(slots, n), reverse=True):
        op = rng.choice(ops)
        ch = chars[i]
        if op == "insert":
            chars.insert(i + rng.randint(0, 1), _neighbour(ch, rng))
        elif op == "delete":
            del chars[i]
        elif op == "substitute":
            chars[i] = _neighbour(ch, rng)
        else:
            j = i + 1 if i + 1 < len(chars) and chars[i + 1].isalnum() else i - 1
            if j >= 0 and chars[j].isalnum() and chars[j] != ch:
                chars[i], chars[j] = chars[j], chars[i]
            else:  # nothing to swap with (one-letter word, doubled letter): a neighbour key instead
                chars[i] = _neighbour(ch, rng)
    out = "".join(chars)
    if not _WORD.search(out):
        # Deletions emptied a tiny query: keep it searchable with substitutions only.
        return typos(text, percent, rng, ops=("substitute",))
    return out


def drop_words(text: str, percent: float, rng: random.Random) -> str:
    """percent% of the words (rounded) dropped at random positions; at least one word is kept."""
    words = text.split()
    n = min(len(words) - 1, round(len(words) * percent / 100))
    if n <= 0:
        return " ".join(words)
    gone = set(rng.sample(range(len(words)), n))
    return " ".join(w for i, w in enumerate(words) if i not in gone)


def truncate_words(text: str, percent: float) -> str:
    """The first percent% of the words (rounded up, at least one)."""
    words = text.split()
    return " ".join(words[: max(1, math.ceil(len(words) * percent / 100))])


def first_words(text: str, n: int) -> str:
    return " ".join(text.split()[: max(1, n)])


def lower_nopunct(text: str) -> str:
    """Lower-cased; hyphens and slashes become spaces; other punctuation is removed."""
    out = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in "-/" or cat == "Pd":
            out.append(" ")
        elif not cat.startswith("P"):
            out.append(ch)
    joined = " ".join("".join(out).split())
    return joined if _WORD.search(joined) else text.lower()


def garble(text: str, condition: Condition | str, seed: int = 0, qid: str = "") -> str:
    """text under condition; the same (text, condition, seed, qid) always gives the same result."""
    cond = parse_condition(condition) if isinstance(condition, str) else condition
    if cond.kind == "clean":
        return text
    if cond.kind == "lower-nopunct":
        return lower_nopunct(text)
    if cond.kind == "truncate":
        return truncate_words(text, cond.strength)
    if cond.kind == "first":
        return first_words(text, cond.strength)
    rng = rng_for(seed, cond.name, qid)
    if cond.kind == "typo":
        return typos(text, cond.strength, rng)
    return drop_words(text, cond.strength, rng)


def garble_queries(queries: dict[str, str], condition: Condition | str, seed: int = 0) -> dict[str, str]:
    """{query id: garbled text} for every query, in the same order."""
    cond = parse_condition(condition) if isinstance(condition, str) else condition
    return {qid: garble(text, cond, seed, qid) for qid, text in queries.items()}
