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
- `chunk_grams` + the `char_df` array: each chunk's character 3-5-grams (within word boundaries),
  hashed to GRAM_BUCKETS, with their counts; and how many chunks hold each bucket (a 16 MiB array, with
  the changes of small commits kept as rows of `lex_gram_delta` until there are many). A question's
  character TF-IDF cosine with any chunk is computed from these alone.

Tokenisation lives here, on the ground floor, because the writer (ingest side) and the readers
(retriever side) must cut text the same way.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

# 2^22 buckets: at 2^20, colliding n-grams moved a question's cosines by up to 0.01 on a 77-chunk KB; at
# 2^22 by 0.0003. Their document frequencies take 16 MiB.
GRAM_BUCKETS = 1 << 22
WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token: two or more word characters
LATIN_WORD = re.compile(r"[a-z]+")
LATIN_WORDS_3 = re.compile(r"[a-z]{3,}")  # latin_words over lower-cased text in one pass: maximal runs of 3+
VOCABULARY_MIN_LENGTH = 3
LEXICON_VERSION = "7"  # 7: FTS5 replaced by the postings of kb/postings.py


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


_SPACES = re.compile(r"\s\s+")
_MULTIPLIER = np.uint64(1099511628211)  # the 64-bit FNV prime: a polynomial hash of each n-gram's code points


def _mix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: spreads the polynomial hashes evenly over the buckets."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def char_grams(texts: list[str]):
    """(N, GRAM_BUCKETS) CSR float32 of character 3-5-gram counts, one row per text.

    The n-grams are scikit-learn's analyzer="char_wb" (lower-cased, each word padded with a space on
    both sides, so first and last letters are marked: robust to typos); they are hashed with numpy over
    all texts at once, about 3x faster than HashingVectorizer's per-n-gram Python loop.
    """
    from scipy import sparse

    words_per_text = [_SPACES.sub(" ", t.lower()).split() for t in texts]
    words = [w for ws in words_per_text for w in ws]
    if not words:
        return sparse.csr_matrix((len(texts), GRAM_BUCKETS), dtype=np.float32)
    padded = np.array([len(w) + 2 for w in words], dtype=np.int64)
    codes = np.frombuffer((" " + "  ".join(words) + " ").encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + 1
    word_end = np.cumsum(padded)
    word_of = np.repeat(np.arange(len(words)), padded)
    text_of_word = np.repeat(np.arange(len(texts)), [len(ws) for ws in words_per_text])
    rows, buckets = [], []
    with np.errstate(over="ignore"):  # the hash is meant to wrap around 2^64
        for n in (3, 4, 5):
            m = len(codes) - n + 1
            if m <= 0:
                continue
            h = np.zeros(m, dtype=np.uint64)
            for j in range(n):
                h = h * _MULTIPLIER + codes[j : j + m]
            inside = np.arange(m) + n <= word_end[word_of[:m]]  # the n-gram stays within its padded word
            rows.append(text_of_word[word_of[:m][inside]])
            buckets.append(_mix(h[inside] * np.uint64(31) + np.uint64(n)) % np.uint64(GRAM_BUCKETS))
    row = np.concatenate(rows)
    col = np.concatenate(buckets).astype(np.int64)
    matrix = sparse.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)), shape=(len(texts), GRAM_BUCKETS))
    matrix.sum_duplicates()
    return matrix


def pack_grams(buckets: np.ndarray, counts: np.ndarray) -> bytes:
    """One text's n-gram buckets and counts as bytes: uint32 buckets then uint16 counts (what chunk_grams stores)."""
    return buckets.astype(np.uint32).tobytes() + np.minimum(counts, 65535).astype(np.uint16).tobytes()


def unpack_grams(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(buckets uint32, counts float32) from pack_grams bytes."""
    n = len(blob) // 6
    buckets = np.frombuffer(blob, dtype=np.uint32, count=n)
    counts = np.frombuffer(blob, dtype=np.uint16, count=n, offset=4 * n).astype(np.float32)
    return buckets, counts
