"""The lexical index's inner loops compiled with numba, for rebuilds, large commits and the readers of large KBs: the
character n-gram counting of kb.lexicon.gram_counts, the count of chunks per n-gram bucket, and the grouping of
postings by term.

Each gives what its numpy counterpart gives (tests/test_lexical_kernels.py holds them equal) in one pass where numpy
makes several. Importing numba and loading the compiled functions costs ~0.5 s (a first compile, cached beside
this file, ~2 s), so only big jobs call them: a small KB's questions and small commits stay in numpy.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

_kernels: dict[str, Callable[..., Any]] = {}


def counted_grams(
    codes: np.ndarray,
    bounds: np.ndarray,
    space: np.ndarray,
    multiplier: np.uint64,
    buckets: int,
    scratch: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr (T + 1,) int64, buckets uint32 ascending per text, counts uint32): kb.lexicon.GramCounts of T texts.

    codes: the lower-cased texts' code points one after the other (uint32), text t at codes[bounds[t]:bounds[t + 1]];
    space: whether each code point below len(space) is whitespace (str.isspace, what str.split cuts at); each word is
    padded with a space on both sides and its 3-5-grams hashed as kb.lexicon's numpy hashing does; buckets: a
    power of two; scratch: two uint32 arrays of at least 3 len(codes) + 3 the kernel may overwrite (kept by the
    caller: fresh ones cost ~700 page faults a call of 250 chunks, a fifth of its time)."""
    if buckets > 1 << 22:  # the kernel sorts a text's buckets in two passes of 11 bits
        raise ValueError(f"{buckets} buckets: counted_grams sorts buckets below 2^22")
    if min(len(scratch[0]), len(scratch[1])) < 3 * len(codes) + 3:
        raise ValueError(f"counted_grams needs scratch arrays of {3 * len(codes) + 3}")
    return _compiled()["grams"](codes, bounds, space, multiplier, np.uint64(buckets - 1), *scratch)


def count_text_grams(
    codes: np.ndarray,
    bounds: np.ndarray,
    space: np.ndarray,
    multiplier: np.uint64,
    cells: np.ndarray,
    stamp: int,
) -> None:
    """Add one to cells[b, 1] at each n-gram bucket b of each text, once per text that holds it: what counting
    counted_grams' buckets adds, without sorting each text's n-grams. codes, bounds, space, multiplier: as
    counted_grams takes them; cells ((buckets, 2) uint32, C order): each bucket's stamp (the last text that counted
    it) and count side by side, one cache line for both; texts are stamped stamp + 1, stamp + 2, ... (below 2^32; a
    caller keeps cells and its last stamp from call to call, kb.lexicon.GramTally)."""
    if cells.ndim != 2 or cells.shape[1] != 2 or len(cells) & (len(cells) - 1) or not cells.flags.c_contiguous:
        raise ValueError("count_text_grams needs cells of shape (a power of two, 2) in C order")
    if stamp + len(bounds) >= 1 << 32:
        raise ValueError("count_text_grams's stamps would wrap: zero cells[:, 0] and start again from 0")
    _compiled()["text_grams"](codes, bounds, space, multiplier, np.uint64(len(cells) - 1), cells, np.uint32(stamp))


def word_tokens(codes: np.ndarray, bounds: np.ndarray, word: np.ndarray) -> tuple[np.ndarray, ...]:
    """(term, row, start, end): the runs of two or more word characters in T texts (kb.lexicon.WORD's tokens).

    codes, bounds: as counted_grams takes them; word ((0x110000,) bool): whether each code point is a word character.
    term (int64): each token's distinct term, numbered by first occurrence; row (int64): its text; start, end
    (int64): where each term first occurs, codes[start[i]:end[i]]."""
    return tuple(_compiled()["words"](codes, bounds, word))


def count_buckets(counts: np.ndarray, buckets: np.ndarray) -> None:
    """Add one to counts (int64) at each of buckets (uint32): np.add.at without its conversions, ~10x faster."""
    _compiled()["count"](counts, buckets)


def group_by_code(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, bounds): order (int64) lists the positions of codes (int64 in [0, n)) code by code, each code's in
    their original order (np.argsort(codes, kind="stable")); code c's run is order[bounds[c]:bounds[c + 1]]."""
    return _compiled()["group"](codes, n)


def loaded() -> bool:
    """Whether this process has compiled the kernels already (so using them costs nothing more)."""
    return bool(_kernels)


def _compiled() -> dict[str, Callable[..., Any]]:
    """The compiled functions (imported and compiled on first call; a process forked after it inherits them)."""
    if not _kernels:
        from numba import njit

        compiled = njit(cache=True, nogil=True)
        global _hash_word, _next_word, _longest  # the kernels below call them: compiled first, so numba finds those
        _hash_word, _next_word, _longest = compiled(_hash_word), compiled(_next_word), compiled(_longest)
        _kernels.update(
            grams=compiled(_grams),
            text_grams=compiled(_text_grams),
            words=compiled(_words),
            count=compiled(_count),
            group=compiled(_group),
        )
    return _kernels


def _count(counts: np.ndarray, buckets: np.ndarray) -> None:
    for b in buckets:
        counts[b] += 1


def _group(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    bounds = np.zeros(n + 1, dtype=np.int64)
    for c in codes:
        bounds[c + 1] += 1
    for c in range(n):
        bounds[c + 1] += bounds[c]
    at = bounds[:-1].copy()
    order = np.empty(len(codes), dtype=np.int64)
    for i in range(len(codes)):
        order[at[codes[i]]] = i
        at[codes[i]] += 1
    return order, bounds


def _longest(bounds: np.ndarray) -> int:
    """The most code points of one text."""
    longest = 0
    for t in range(len(bounds) - 1):
        longest = max(longest, bounds[t + 1] - bounds[t])
    return longest


def _next_word(codes: np.ndarray, i: int, end: int, space: np.ndarray) -> tuple[int, int]:
    """(start, stop) of the first word (a run of non-whitespace) in codes[i:end]; (end, end) if there is none."""
    while i < end and codes[i] < len(space) and space[codes[i]]:
        i += 1
    j = i
    while j < end and not (codes[j] < len(space) and space[codes[j]]):
        j += 1
    return i, j


def _hash_word(
    codes: np.ndarray, i: int, j: int, padded: np.ndarray, multiplier: np.uint64, mask: np.uint64, out: np.ndarray, k: int
) -> int:
    """Write the word codes[i:j]'s n-gram buckets to out from k on; the next free position of out."""
    # Every constant a uint64: numba widens uint64 mixed with int64 to float64.
    c1, c2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
    s33, k31, pad = np.uint64(33), np.uint64(31), np.uint64(33)  # pad: a space's code point plus one
    # the word padded, each code point plus one (as kb.lexicon hashes them)
    size = j - i + 2
    padded[0] = pad
    for p in range(i, j):
        padded[p - i + 1] = np.uint64(codes[p]) + np.uint64(1)
    padded[size - 1] = pad
    for start in range(size - 2):
        h = padded[start] * multiplier + padded[start + 1]
        for n in range(3, min(size - start, 5) + 1):
            h = h * multiplier + padded[start + n - 1]
            x = h * k31 + np.uint64(n)
            x ^= x >> s33
            x *= c1
            x ^= x >> s33
            x *= c2
            x ^= x >> s33
            out[k] = np.uint32(x & mask)
            k += 1
    return k


def _text_grams(
    codes: np.ndarray,
    bounds: np.ndarray,
    space: np.ndarray,
    multiplier: np.uint64,
    mask: np.uint64,
    cells: np.ndarray,
    stamp: np.uint32,
) -> None:
    longest = _longest(bounds)
    padded = np.empty(longest + 2, dtype=np.uint64)
    word_grams = np.empty(3 * longest + 3, dtype=np.uint32)
    for t in range(len(bounds) - 1):
        stamp += np.uint32(1)
        i, j = _next_word(codes, bounds[t], bounds[t + 1], space)
        while i < j:
            for p in range(_hash_word(codes, i, j, padded, multiplier, mask, word_grams, 0)):
                b = word_grams[p]
                if cells[b, 0] != stamp:  # this text's first n-gram in bucket b
                    cells[b, 0] = stamp
                    cells[b, 1] += np.uint32(1)
            i, j = _next_word(codes, j, bounds[t + 1], space)


def _words(codes: np.ndarray, bounds: np.ndarray, word: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Tokens are at most a third of the code points (two word characters and a separator, or a text's end).
    most = len(codes) // 3 + len(bounds)
    term = np.empty(most, dtype=np.int64)
    row = np.empty(most, dtype=np.int64)
    start = np.empty(most, dtype=np.int64)
    end = np.empty(most, dtype=np.int64)
    hashes = np.empty(most, dtype=np.uint64)
    size = 16
    while size < 2 * most:
        size *= 2
    slots = np.full(size, -1, dtype=np.int64)  # an open-addressed table of the terms so far: their numbers
    mask = np.uint64(size - 1)
    tokens, terms = 0, 0
    for t in range(len(bounds) - 1):
        i, stop = bounds[t], bounds[t + 1]
        while i < stop:
            if not word[codes[i]]:
                i += 1
                continue
            j = i
            h = np.uint64(0xCBF29CE484222325)
            while j < stop and word[codes[j]]:
                h = (h ^ np.uint64(codes[j])) * np.uint64(1099511628211)
                j += 1
            if j - i >= 2:
                s = h & mask
                found = -1
                while slots[s] >= 0:
                    other = slots[s]
                    if hashes[other] == h and end[other] - start[other] == j - i:
                        same = True
                        for p in range(j - i):
                            if codes[start[other] + p] != codes[i + p]:
                                same = False
                                break
                        if same:
                            found = other
                            break
                    s = (s + np.uint64(1)) & mask
                if found < 0:
                    found = terms
                    slots[s], hashes[found], start[found], end[found] = found, h, i, j
                    terms += 1
                term[tokens], row[tokens] = found, t
                tokens += 1
            i = j
    return term[:tokens].copy(), row[:tokens].copy(), start[:terms].copy(), end[:terms].copy()


def _grams(
    codes: np.ndarray,
    bounds: np.ndarray,
    space: np.ndarray,
    multiplier: np.uint64,
    mask: np.uint64,
    out_buckets: np.ndarray,
    out_counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    texts = len(bounds) - 1
    longest = _longest(bounds)
    # A text of L code points has at most 3 L + 3 n-grams (3 per position of its padded words, less 3 per word).
    text_grams = np.empty(3 * longest + 3, dtype=np.uint32)
    scratch = np.empty(3 * longest + 3, dtype=np.uint32)
    low = np.zeros(2048, dtype=np.int64)  # per text: each digit's count, then where its run starts
    high = np.zeros(2048, dtype=np.int64)
    indptr = np.zeros(texts + 1, dtype=np.int64)
    padded = np.empty(longest + 2, dtype=np.uint64)
    k_out = 0
    for t in range(texts):
        k = 0
        i, j = _next_word(codes, bounds[t], bounds[t + 1], space)
        while i < j:
            k = _hash_word(codes, i, j, padded, multiplier, mask, text_grams, k)
            i, j = _next_word(codes, j, bounds[t + 1], space)
        if k:
            # The text's n-grams sorted: two stable counting passes of 11 bits each (the buckets are below 2^22),
            # both digits' histograms in one read; ~4x faster than numba's np.sort on a text's ~2,000.
            low[:] = 0
            high[:] = 0
            for p in range(k):
                low[text_grams[p] & 2047] += 1
                high[(text_grams[p] >> 11) & 2047] += 1
            at_low = 0
            at_high = 0
            for d in range(2048):
                c = low[d]
                low[d] = at_low
                at_low += c
                c = high[d]
                high[d] = at_high
                at_high += c
            for p in range(k):
                d = text_grams[p] & 2047
                scratch[low[d]] = text_grams[p]
                low[d] += 1
            for p in range(k):
                d = (scratch[p] >> 11) & 2047
                text_grams[high[d]] = scratch[p]
                high[d] += 1
            out_buckets[k_out] = text_grams[0]
            out_counts[k_out] = 1
            for p in range(1, k):
                if text_grams[p] == out_buckets[k_out]:
                    out_counts[k_out] += 1
                else:
                    k_out += 1
                    out_buckets[k_out] = text_grams[p]
                    out_counts[k_out] = 1
            k_out += 1
        indptr[t + 1] = k_out
    return indptr, out_buckets[:k_out].copy(), out_counts[:k_out].copy()
