"""Query repair by a Hopfield memory whose stored patterns are the KB's own words.

Each word of the KB is stored as its character 1-3-gram vector (L2-normalised,
word boundaries marked). A garbled query word is a corrupted cue: one update
with a large beta puts almost all attention on the stored word whose n-grams it
shares most, with a small log-frequency bias so that common words win near-ties.
That word replaces the cue. Words the KB already knows are left alone, as are
short words and words in scripts the n-grams do not cover.

    >>> memory = VocabularyMemory.build(["refund policy for an annual plan"])
    >>> memory.repair("refnd polcy for anual plan").text
    'refund policy for annual plan'
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
LATIN_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Repair:
    """text: the repaired query; changes: (garbled word, stored word) pairs, in query order."""

    text: str
    changes: tuple[tuple[str, str], ...]


class VocabularyMemory:
    """Stored patterns: the KB's lower-case Latin words (min_length letters or more) as char n-gram vectors.

    beta: inverse temperature over cosine similarities in [0, 1]; prior: weight of
    log(1 + count) added to the attention logits; min_similarity: a cue whose best
    match is below this cosine is left unrepaired.
    """

    def __init__(self, words: Sequence[str], counts: np.ndarray, min_length: int = 3):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.log_counts = np.log1p(np.asarray(counts, dtype=np.float32))
        self.min_length = min_length
        # char_wb pads each word with spaces, so the n-grams mark its first and last letters.
        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), use_idf=False, dtype=np.float32)
        patterns = self._vectorizer.fit_transform(self.words) if self.words else sp.csr_matrix((0, 0))
        self._patterns_t = patterns.T.tocsr()

    @classmethod
    def build(cls, texts: Sequence[str], min_length: int = 3) -> "VocabularyMemory":
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(w for w in LATIN_WORD.findall(text.lower()) if len(w) >= min_length)
        words = sorted(counts)
        return cls(words, np.array([counts[w] for w in words]), min_length)

    def __len__(self) -> int:
        return len(self.words)

    def needs_repair(self, word: str) -> bool:
        return len(word) >= self.min_length and LATIN_WORD.fullmatch(word) is not None and word not in self.index

    def recall(self, cues: Sequence[str], beta: float = 40.0, prior: float = 0.02) -> tuple[list[str], np.ndarray]:
        """The stored word each cue settles on, and the cosine of cue and stored word: (len(cues),)."""
        if not cues or not self.words:
            return list(cues), np.zeros(len(cues), dtype=np.float32)
        similarity = (self._vectorizer.transform(cues) @ self._patterns_t).toarray()
        logits = beta * similarity + prior * self.log_counts
        best = logits.argmax(axis=1)
        return [self.words[i] for i in best], similarity[np.arange(len(cues)), best]

    def repair(self, query: str, beta: float = 40.0, prior: float = 0.02, min_similarity: float = 0.0) -> Repair:
        """Replace each unknown Latin word of query by the stored word it recalls."""
        pieces = re.split(r"([^\W\d_]+)", query)
        slots = [i for i in range(1, len(pieces), 2) if self.needs_repair(pieces[i].lower())]
        if not slots:
            return Repair(query, ())
        recalled, similarity = self.recall([pieces[i].lower() for i in slots], beta, prior)
        changes = []
        for i, word, sim in zip(slots, recalled, similarity):
            if sim >= min_similarity:
                changes.append((pieces[i], word))
                pieces[i] = word
        return Repair("".join(pieces), tuple(changes))
