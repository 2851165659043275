"""The KB's lexical index: what its words and character n-grams say, kept in kb.sqlite and updated per commit.

Four structures, all maintained by the writer inside the transaction that commits the chunks, so
they always answer what a full rebuild from the texts would give, cost work only for new and
removed chunks, and need nothing built when a process starts:

- `lex_postings`: the BM25 inverted file (kb/postings.py): per term, the chunks holding it with the term's count
  and the chunk's BM25 length. Numpy scores a question's words over all chunks (BM25 retriever, lexical
  candidates) or over given chunks from it alone; no chunk text is read at question time.
- `lex_terms`: word -> number of chunks holding it: IDF for BM25 and for the answer layer.
- `lex_words`: Latin word (3+ letters) -> occurrences in all chunks: the vocabulary query repair
  settles on, and the rarity of a question's words.
- the `char_df` array: how many chunks hold each character 3-5-gram bucket (n-grams within word boundaries,
  hashed to GRAM_BUCKETS; a 16 MiB array, with the changes of small commits kept as rows of `lex_gram_delta`
  until there are many). A question's character TF-IDF cosine with a chunk is computed from it and the chunk's
  n-gram counts, which are counted from its text when a reader needs them (gram_counts): since version 9 they
  are not stored (they took more bytes than the texts, and writing them was a third of a rebuild).

Tokenisation lives here, on the ground floor, because the writer (ingest side) and the readers
(retriever side) must cut text the same way.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

# 2^22 buckets: at 2^20, colliding n-grams moved a question's cosines by up to 0.01 on a 77-chunk KB; at
# 2^22 by 0.0003. Their document frequencies take 16 MiB.
GRAM_BUCKETS = 1 << 22
# bm25s's default token, two or more word characters (r"(?u)\b\w\w+\b"): findall's greedy scan only starts a match
# after a non-word character and ends one before one, so the boundaries are implied, and ~30% faster left out.
WORD = re.compile(r"(?u)\w\w+")
LATIN_WORD = re.compile(r"[a-z]+")
LATIN_WORDS_3 = re.compile(r"[a-z]{3,}")  # latin_words over lower-cased text in one pass: maximal runs of 3+
VOCABULARY_MIN_LENGTH = 3
# 7: FTS5 replaced by the postings of kb/postings.py; 8: chunk_grams in 3 bytes an n-gram; 9: no chunk_grams (each
# chunk's n-gram counts are counted from its text at question time)
LEXICON_VERSION = "9"


def word_terms(text: str) -> list[str]:
    """Lower-cased word tokens of text, in order (repeats kept)."""
    return WORD.findall(text.lower())


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The 33 English stopwords BM25 skips (bm25s's list: a short one, so "how many" questions keep "many").

    Read from bm25s/stopwords.py alone: importing it through the package runs bm25s/__init__, which loads
    numba (~0.25 s of a fresh `kb ask`)."""
    import importlib.util

    spec = importlib.util.find_spec("bm25s")  # finds the package without running its __init__
    folder = next(iter(spec.submodule_search_locations or ())) if spec else None
    if folder is None:
        from bm25s.stopwords import STOPWORDS_EN  # the ordinary import names what is missing

        return frozenset(STOPWORDS_EN)
    source = importlib.util.spec_from_file_location("_bm25s_stopwords", f"{folder}/stopwords.py")
    assert source is not None and source.loader is not None
    module = importlib.util.module_from_spec(source)
    source.loader.exec_module(module)
    return frozenset(module.STOPWORDS_EN)


def latin_words(text: str) -> list[str]:
    """The lower-cased runs of 3+ Latin letters in text (repeats kept): the words query repair settles on.

    "covid19" gives "covid" and "don't" gives "don": a typed word is matched against these pieces.
    """
    return [w for w in LATIN_WORD.findall(text.lower()) if len(w) >= VOCABULARY_MIN_LENGTH]


def bm25_terms(text: str) -> list[str]:
    """The tokens BM25 counts: word_terms without stopwords (repeats kept)."""
    stop = stopwords()
    return [t for t in word_terms(text) if t not in stop]


_MULTIPLIER = np.uint64(1099511628211)  # the 64-bit FNV prime: a polynomial hash of each n-gram's code points


def _mix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: spreads the polynomial hashes evenly over the buckets."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@dataclass(frozen=True)
class GramCounts:
    """Character 3-5-gram counts of N texts in CSR form: row i's buckets (uint32, ascending) and counts (uint32)
    are buckets[indptr[i]:indptr[i + 1]] and counts[...]; indptr is (N + 1,) int64."""

    indptr: np.ndarray
    buckets: np.ndarray
    counts: np.ndarray

    def matrix(self) -> csr_matrix:
        """(N, GRAM_BUCKETS) CSR float32 of the counts, indices sorted and summed."""
        from scipy import sparse

        shape = (len(self.indptr) - 1, GRAM_BUCKETS)
        out = sparse.csr_matrix((self.counts.astype(np.float32), self.buckets.astype(np.int32), self.indptr), shape=shape)
        out.has_canonical_format = True  # built sorted and unique
        return out


def gram_counts(texts: list[str], lowered: bool = False, compiled: bool = False) -> GramCounts:
    """The character 3-5-gram counts of texts (lowered: they are lower-cased already), as char_grams describes,
    hashed and counted with numpy over all texts at once (compiled: by kb.lexical_kernels's numba function instead,
    the same counts ~3x faster, for jobs that can pay for importing numba)."""
    if compiled:
        return compiled_gram_counts(code_points(texts if lowered else [t.lower() for t in texts]))
    # str.split() cuts at runs of whitespace as scikit-learn's char_wb does after folding them to one space.
    words_per_text = [(t if lowered else t.lower()).split() for t in texts]
    words = list(chain.from_iterable(words_per_text))
    if not words:
        return GramCounts(np.zeros(len(texts) + 1, dtype=np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32))
    padded = np.fromiter(map(len, words), dtype=np.int64, count=len(words)) + 2
    text = np.frombuffer((" " + "  ".join(words) + " ").encode("utf-32-le"), dtype=np.uint32)
    codes = np.add(text, 1, dtype=np.uint64)
    word_start = np.r_[0, np.cumsum(padded)]
    # Characters left in each position's padded word, counting its own: an n-gram starting there stays inside
    # its word when at least n are left (so none runs past the last word either).
    left = np.repeat(word_start[1:], padded) - np.arange(len(codes))
    m = len(codes) - 2  # positions a 3-gram can start at (every word pads to 3 or more)
    bucket, before = _hashed_buckets(codes, left, m)
    first_word = np.r_[0, np.cumsum([len(ws) for ws in words_per_text])]
    cut = before[np.minimum(word_start[first_word], m)]
    bounds = cut.tolist()
    for start, end in zip(bounds, bounds[1:]):  # text by text: sorts that stay in cache, ~2.5x faster than one
        bucket[start:end].sort()
    new = np.ones(len(bucket), dtype=bool)  # a bucket unlike the one before it, or a text's first
    np.not_equal(bucket[1:], bucket[:-1], out=new[1:])
    new[cut[:-1][cut[:-1] < len(bucket)]] = True
    first = np.flatnonzero(new)
    counts = np.diff(np.r_[first, len(bucket)]).astype(np.uint32)
    return GramCounts(np.searchsorted(first, cut).astype(np.int64), bucket[first], counts)


@dataclass(frozen=True)
class CodePoints:
    """Lower-cased texts joined by spaces, as kb.lexical_kernels reads them: text is the joined string, codes its
    code points (uint32), text t codes[bounds[t]:bounds[t + 1]] with the space after it (whitespace ends a word)."""

    text: str
    codes: np.ndarray
    bounds: np.ndarray


def code_points(lowered: list[str]) -> CodePoints:
    """CodePoints of lower-cased texts."""
    text = " ".join(lowered)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    bounds = np.zeros(len(lowered) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum(np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered)) + 1)
    bounds[-1] = len(codes)
    return CodePoints(text, codes, bounds)


def compiled_gram_counts(p: CodePoints) -> GramCounts:
    """gram_counts of the texts p holds, by kb.lexical_kernels.counted_grams: the texts are cut into words there."""
    from kb.lexical_kernels import counted_grams

    return GramCounts(
        *counted_grams(p.codes, p.bounds, _whitespace(), _MULTIPLIER, GRAM_BUCKETS, _scratch(3 * len(p.codes) + 3))
    )


def compiled_words(points: CodePoints) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(terms, term, row): word_terms of each text by kb.lexical_kernels.word_tokens; terms are the distinct tokens
    by first occurrence, term (int64) each token's index into terms, row (int64) its text's."""
    from kb.lexical_kernels import word_tokens

    term, row, start, end = word_tokens(points.codes, points.bounds, _word_characters())
    text = points.text
    return [text[a:b] for a, b in zip(start.tolist(), end.tolist())], term, row


class GramTally:
    """The texts holding each n-gram bucket, counted one text at a time (a rebuild's worker counts its chunks so, as
    np.add.at over gram_counts' buckets would, without sorting each text's n-grams).

    cells ((buckets, 2) uint32, buckets a power of two): each bucket's count beside the stamp of the last text that
    counted it. One cache line holds both: counting 4M buckets ran 25% faster than from two arrays. cells may be shared
    memory (a worker counts into one its parent reads); counts is the count column."""

    def __init__(self, cells: np.ndarray) -> None:
        self.cells = cells
        self._stamp = 0  # the last text's stamp: ~4 billion texts before they start again

    @classmethod
    def zeros(cls, buckets: int = GRAM_BUCKETS) -> "GramTally":
        return cls(np.zeros((buckets, 2), dtype=np.uint32))

    @property
    def counts(self) -> np.ndarray:
        """The texts counted per bucket: (buckets,) uint32, a view."""
        return self.cells[:, 1]

    def count(self, points: CodePoints) -> None:
        """Count the texts points holds (kb.lexical_kernels.count_text_grams)."""
        from kb.lexical_kernels import count_text_grams

        if self._stamp + len(points.bounds) >= 1 << 32:
            self.cells[:, 0] = 0
            self._stamp = 0
        count_text_grams(points.codes, points.bounds, _whitespace(), _MULTIPLIER, self.cells, self._stamp)
        self._stamp += len(points.bounds) - 1

    def count_buckets(self, buckets: np.ndarray) -> None:
        """Count texts by their distinct buckets, as gram_counts gives them (the numpy way, where nothing compiled)."""
        np.add.at(self.counts, buckets.astype(np.intp), 1)


_SCRATCH = threading.local()


def _scratch(size: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's two uint32 work arrays for counted_grams, at least size long (grown as needed, then kept)."""
    arrays = getattr(_SCRATCH, "arrays", None)
    if arrays is None or len(arrays[0]) < size:
        arrays = _SCRATCH.arrays = (np.empty(size, dtype=np.uint32), np.empty(size, dtype=np.uint32))
    return arrays


@lru_cache(maxsize=1)
def _word_characters() -> np.ndarray:
    """Whether each code point is a word character (what WORD's \\w matches): read from the regular expression
    engine itself over every code point (~0.04 s, once a process), so the compiled tokens are findall's."""
    # Every code point as one str, lone surrogates included (a str holds them); decoded in one call (joining 1.1M
    # chr()s took 0.14 s).
    every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(0x110000, dtype=np.bool_)
    table[[m.start() for m in re.finditer(r"(?u)\w", every)]] = True
    return table


@lru_cache(maxsize=1)
def _whitespace() -> np.ndarray:
    """Whether each code point up to U+3000 is whitespace (str.isspace: where str.split cuts); none past it is."""
    return np.array([chr(c).isspace() for c in range(0x3001)], dtype=np.bool_)


def _hashed_buckets(codes: np.ndarray, left: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(each in-word n-gram's bucket, uint32, by start position then n; the n-grams starting before each position).
    codes: the padded text's code points plus one (uint64); left: characters left in each position's padded word;
    m: the positions a 3-gram can start at."""
    # One row per starting position, one column per n: read in C order, the n-grams come text by text.
    hashes = np.zeros((m, 3), dtype=np.uint64)
    with np.errstate(over="ignore"):  # the hash is meant to wrap around 2^64
        h = codes[:-1] * _MULTIPLIER + codes[1:]  # of the 2-grams: an n-gram's is its (n-1)-gram's, times M, plus a code
        for j, n in enumerate((3, 4, 5)):
            h = h[: len(codes) - n + 1] * _MULTIPLIER + codes[n - 1 :]
            hashes[: len(h), j] = h * np.uint64(31) + np.uint64(n)
        inside = left[:m, None] >= np.arange(3, 6)
        bucket = (_mix(hashes[inside]) % np.uint64(GRAM_BUCKETS)).astype(np.uint32)
    return bucket, np.r_[0, np.cumsum(inside.sum(axis=1))]


def char_grams(texts: list[str]) -> csr_matrix:
    """(N, GRAM_BUCKETS) CSR float32 of character 3-5-gram counts, one row per text.

    The n-grams are scikit-learn's analyzer="char_wb" (lower-cased, each word padded with a space on
    both sides, so first and last letters are marked: robust to typos); they are hashed and counted with numpy
    over all texts at once (gram_counts), several times faster than HashingVectorizer's per-n-gram Python loop.
    """
    return gram_counts(texts).matrix()


def pack_grams(buckets: np.ndarray, counts: np.ndarray) -> bytes:
    """One text's n-gram buckets and counts as bytes: uint32 buckets then uint16 counts (the question memory's rows)."""
    return buckets.astype(np.uint32).tobytes() + np.minimum(counts, 65535).astype(np.uint16).tobytes()


def unpack_grams(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(buckets uint32, counts float32) from pack_grams bytes (the question memory's format)."""
    n = len(blob) // 6
    buckets = np.frombuffer(blob, dtype=np.uint32, count=n)
    counts = np.frombuffer(blob, dtype=np.uint16, count=n, offset=4 * n).astype(np.float32)
    return buckets, counts
