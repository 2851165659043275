"""Query repair: garbled words settle on the KB's own words; correct words are left alone.

A question word is *known* when the KB holds it or an English dictionary does (the
82,765-word frequency list that ships inside symspellpy). Known words are never
rewritten: "wife", "despise" or "mandatory" are not typos just because the KB lacks them.

An unknown word is a corrupted cue and is repaired in two stages:
1. Edit distance (optimal string alignment) over the KB's words: of the KB words within 1 edit
   (words of 4 letters or fewer) or 2 edits, the nearest, then the most frequent, then the first
   alphabetically. The first SCANS_BEFORE_BUILD words are looked up by a scan of every KB word
   (RapidFuzz); after that, or after WARM_UP_QUERY, by symspellpy's symmetric-delete dictionary.
   Both find the same word; the scan costs nothing to start, the dictionary ~1 s to build.
2. Further away, a Hopfield memory whose stored patterns are the KB's words as character
   1-3-gram vectors: one update with a large beta settles on the word sharing the most
   n-grams, with a small log-frequency bias; it is accepted only if its cosine with the
   cue reaches min_similarity, so a name the KB never mentions stays as typed. Words of
   fewer than FAR_MIN_LENGTH letters skip this stage (too few n-grams to tell), and words of
   fewer than REPAIR_MIN_LENGTH are not rewritten at all.

Mixed-case tokens (NSAIDs, hTRPML) are identifiers, not typos, and are left alone.
Repair.unknown counts the unknown words: the reader uses unknown / words as its
garble level (how much the question's characters, rather than its wording, are off).

    >>> memory = VocabularyMemory.build(["refund policy for an annual plan"])
    >>> memory.repair("refnd polcy for anual plan").text
    'refund policy for annual plan'
"""

from __future__ import annotations

import collections
import re
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from kb import LATIN_WORD, VOCABULARY_MIN_LENGTH, latin_words

# A word with its apostrophe forms (don't, customer's) is one piece: "shouldn" is no typo.
_PIECES = re.compile(r"([^\W\d_]+(?:['’][^\W\d_]+)*)", re.UNICODE)
# Words shorter than this are repaired by edit distance only: the n-gram memory turned
# "dev" into "device" and "usa" into "use".
FAR_MIN_LENGTH = 5
# Unknown words shorter than this count toward the garble level but are not rewritten: among
# them are abbreviations with a word one edit away (usa -> use, nhs, hku), 22 of the 47 clean
# covidfaq questions the memory rewrote with a 3-letter minimum.
REPAIR_MIN_LENGTH = 4
# The question of a server's warm-up search: its last word is in no dictionary (and unlikely in any KB), so query
# repair builds its edit dictionary and n-gram memory then (~1.9 s at SciFact's 30k words), before the server says it
# is ready, instead of during the first garbled question a user asks (which took 0.8-0.9 s more than the next one).
WARM_UP_QUERY = "warm up the index qxzvbmtrk"
# Unknown words a memory looks up by scanning every KB word (1.3-1.6 ms each at SciFact's 30k words) before it builds
# the symmetric-delete dictionary instead (~1 s and ~52 MB there; then ~0.1-0.2 ms a word). Both grow with the vocabulary,
# so the break-even is ~700 words at any size; a one-shot `kb ask` with three typos scans three and never builds.
SCANS_BEFORE_BUILD = 500


@dataclass(frozen=True)
class Repair:
    """text: the repaired query; changes: (garbled word, stored word) pairs, in query order;
    unknown: words neither the KB nor the dictionary knows (repaired or not); words: all words."""

    text: str
    changes: tuple[tuple[str, str], ...]
    unknown: int = 0
    words: int = 0

    @property
    def garble(self) -> float:
        """Share of the question's words that are unknown, 0..1."""
        return self.unknown / self.words if self.words else 0.0


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The English dictionary that ships inside symspellpy (no download), lower case."""
    text = resources.files("symspellpy").joinpath("frequency_dictionary_en_82_765.txt").read_text(encoding="utf-8")
    return frozenset(line.split(" ", 1)[0] for line in text.splitlines() if line)


class VocabularyMemory:
    """The KB's lower-case Latin words (min_length letters or more) with their counts.

    beta: inverse temperature of the n-gram memory over cosines in [0, 1]; prior: weight of
    log(1 + count) in its logits; min_similarity: cosine the n-gram memory must reach.
    """

    def __init__(self, words: Sequence[str], counts: np.ndarray, min_length: int = 3):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.counts = np.asarray(counts, dtype=np.int64)
        self.log_counts = np.log1p(self.counts.astype(np.float32))
        self.min_length = min_length
        self._english = english_words()
        self._lock = threading.Lock()
        self._scans = 0  # unknown words looked up by a scan so far (see SCANS_BEFORE_BUILD)

    def updated(self, words: Sequence[str], counts: np.ndarray) -> "VocabularyMemory":
        """The memory of a later snapshot's words, keeping what this one already built.

        The edit dictionary (seconds to build for a large KB) is shared and given the new words only:
        lookups keep to the words the asking memory holds, so words a sync removed are never
        suggested. The n-gram memory is kept when the words are the same.
        """
        new = VocabularyMemory(words, counts, self.min_length)
        new._lock = self._lock  # one lock for the shared dictionary
        with self._lock:
            edits = self.__dict__.get("_edits")
            if edits is not None:
                for word, count in zip(new.words, new.counts):
                    if word not in self.index:
                        edits.create_dictionary_entry(word, int(count))
                new.__dict__["_edits"] = edits
            if "_ngram_memory" in self.__dict__ and new.words == self.words:
                new.__dict__["_ngram_memory"] = self.__dict__["_ngram_memory"]
        return new

    def prepare(self) -> None:
        """Build the edit dictionary and the n-gram memory now, not on need: what a long-lived process's warm-up
        does (searching WARM_UP_QUERY calls this), so its first garbled questions find both ready."""
        with self._lock:
            _ = self._edits, self._ngram_memory

    @property
    def prepared(self) -> bool:
        """Whether the edit dictionary and the n-gram memory are built (by a garbled question, or WARM_UP_QUERY)."""
        return "_edits" in self.__dict__ and "_ngram_memory" in self.__dict__

    @cached_property
    def _edits(self):
        """symspellpy's symmetric-delete dictionary of the KB's words: built the first time a question has an
        unknown word (a clean question never pays for it)."""
        from symspellpy import SymSpell

        edits = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for word, count in zip(self.words, self.counts):
            edits.create_dictionary_entry(word, int(count))
        return edits

    @cached_property
    def _ngram_memory(self):
        """(vectorizer, patterns transposed): the KB's words as character 1-3-gram vectors."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        # char_wb pads each word with spaces, so the n-grams mark its first and last letters.
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), use_idf=False, dtype=np.float32)
        patterns = vectorizer.fit_transform(self.words) if self.words else sp.csr_matrix((0, 0))
        return vectorizer, patterns.T.tocsr()

    @classmethod
    def build(cls, texts: Sequence[str]) -> "VocabularyMemory":
        """From texts, counting each word's occurrences (as the KB's word index stores them)."""
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(latin_words(text))
        words = sorted(counts)
        return cls(words, np.array([counts[w] for w in words], dtype=np.int64), VOCABULARY_MIN_LENGTH)

    def __len__(self) -> int:
        return len(self.words)

    def is_unknown(self, token: str) -> bool:
        """A Latin word of min_length+ letters that neither the KB nor the dictionary holds (case kept)."""
        word = token.lower()
        if len(word) < self.min_length or LATIN_WORD.fullmatch(word) is None:  # also don't, customer's
            return False
        if any(c.isupper() for c in token[1:]):
            return False  # NSAIDs, hTRPML, iOS: identifiers, not typos
        return word not in self.index and word not in self._english

    def recall(self, cues: Sequence[str], beta: float = 40.0, prior: float = 0.02) -> tuple[list[str], np.ndarray]:
        """The stored word each cue settles on in the n-gram memory, and their cosine: (len(cues),)."""
        if not cues or not self.words:
            return list(cues), np.zeros(len(cues), dtype=np.float32)
        with self._lock:
            vectorizer, patterns_t = self._ngram_memory
        similarity = (vectorizer.transform(cues) @ patterns_t).toarray()
        logits = beta * similarity + prior * self.log_counts
        best = logits.argmax(axis=1)
        return [self.words[i] for i in best], similarity[np.arange(len(cues)), best]

    def nearest_by_edits(self, word: str) -> str | None:
        """Of the KB words within 1 edit (4 letters or fewer) or 2 edits of word, the nearest, then the most
        frequent, then the first alphabetically; None if there is none."""
        limit = 1 if len(word) <= 4 else 2
        with self._lock:
            if "_edits" not in self.__dict__ and self._scans < SCANS_BEFORE_BUILD:
                self._scans += 1
                found = self._scanned(word, limit)
            else:
                found = self._looked_up(word, limit)
        return min(found, key=lambda wd: (wd[1], -self.counts[self.index[wd[0]]], wd[0]))[0] if found else None

    def _scanned(self, word: str, limit: int) -> list[tuple[str, int]]:
        """(KB word, distance) for every KB word within limit edits of word, by a scan of them all."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        found = process.extract(word, self.words, scorer=OSA.distance, score_cutoff=limit, limit=None)
        return [(w, int(d)) for w, d, _ in found]

    def _looked_up(self, word: str, limit: int) -> list[tuple[str, int]]:
        """_scanned's answer from the symmetric-delete dictionary (the same edit distance: optimal string alignment)."""
        from symspellpy import Verbosity

        found = self._edits.lookup(word, Verbosity.ALL, max_edit_distance=limit, transfer_casing=False)
        # The dictionary may be shared with later snapshots (see updated): keep to this memory's words.
        return [(s.term, s.distance) for s in found if s.term in self.index]

    def rarest_idf(self, query: str, n_chunks: int) -> float:
        """ln((N+1)/(n+0.5)) of the query's rarest KB word (n: its occurrences in the KB's N chunks), 0 if none.

        Occurrences stand in for document frequency (n >= df), which errs towards calling a word common.
        """
        counts = [self.counts[self.index[w]] for w in LATIN_WORD.findall(query.lower()) if w in self.index]
        if not counts:
            return 0.0
        return float(np.log((n_chunks + 1) / (min(counts) + 0.5)))

    def unrepaired(self, query: str) -> Repair:
        """query as it is, with its unknown and total word counts (the garble level without repair)."""
        words = _PIECES.split(query)[1::2]
        return Repair(query, (), unknown=sum(map(self.is_unknown, words)), words=len(words))

    def repair(self, query: str, beta: float = 40.0, prior: float = 0.02, min_similarity: float = 0.6) -> Repair:
        """Replace each unknown Latin word of query by the KB word it settles on (see the module docstring)."""
        if query == WARM_UP_QUERY:
            self.prepare()
        pieces = _PIECES.split(query)
        slots = range(1, len(pieces), 2)
        unknown = [i for i in slots if self.is_unknown(pieces[i])]
        replaced: dict[int, str] = {}
        far = []
        for i in unknown:
            if len(pieces[i]) < REPAIR_MIN_LENGTH:
                continue
            near = self.nearest_by_edits(pieces[i].lower())
            if near is None and len(pieces[i]) >= FAR_MIN_LENGTH:
                far.append(i)
            elif near is None:
                continue
            else:
                replaced[i] = near
        if far:
            recalled, similarity = self.recall([pieces[i].lower() for i in far], beta, prior)
            replaced.update({i: w for i, w, s in zip(far, recalled, similarity) if s >= min_similarity})
        changes = tuple((pieces[i], replaced[i]) for i in sorted(replaced))
        for i, word in replaced.items():
            pieces[i] = word
        return Repair("".join(pieces), changes, unknown=len(unknown), words=len(slots))
