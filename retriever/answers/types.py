"""What the answer layer takes and gives: configs, citations, answers, scored sentences.

Shared by the extractive reader (retriever.answers.compose) and the generative one (retriever.answers.llm),
which both import from here and not from each other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kb import ChunkRecord, KBError
from retriever.answers.answerability import ANSWERABILITY
from retriever.results import Hit, SearchResult

NOT_FOUND = "Not found in the knowledge base."
EVIDENCE_THRESHOLD = 0.48  # the bi-encoder evidence score's threshold, when the cross-encoder is off


@dataclass(frozen=True)
class LLMConfig:
    """An OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp server...) for generative answers.

    url: the server's base URL, e.g. http://localhost:11434/v1 (".../chat/completions" is appended);
    model: the model name the server knows; api_key: sent as a Bearer token when set;
    timeout: seconds to wait for the reply; max_tokens: length cap of the reply.
    """

    url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    max_tokens: int = 300
    temperature: float = 0.0


@dataclass(frozen=True)
class AnswerConfig:
    """How answers are composed and when they abstain.

    Sentence score, which ranks the sentences to quote:
        score = w_sentence * cos(question, sentence) + w_passage * cos(question, passage)
                + w_lexical * overlap(question words, sentence words) + w_rank / rank of the passage
    with cosines from the KB's embedding model (sentences embedded under their document
    title and section, as passages are) and overlap the IDF-weighted share of the question's
    content words found in the sentence, typos allowed (retriever.answers.evidence). The rank
    prior trusts the retriever's passage order: on covidfaq, citation [1] came from a relevant
    entry for 66% of 400 questions with w_rank 0.1 against 57% without (python -m eval.answers).

    Evidence, which decides abstention:
        evidence = w_coverage * coverage + (1 - w_coverage) * best sentence score (rank prior left out)
    coverage is the IDF-weighted share of the question's content words (IDF over the KB's
    chunks, typos allowed) that occur in the retrieved passages: an out-of-scope question
    names things the KB never mentions (Shopify, payroll, HIPAA), which embeddings of a
    small model blur but the words do not. Cosines alone separated answerable from
    out-of-scope questions poorly (AUC 0.71 vs 0.88 for coverage on the sample set).

    min_evidence: abstain below this evidence (None: the default of the evidence in use, see
        `threshold`). By default evidence is the score above and its threshold 0.48
        (fitted by scripts/calibrate_abstain.py, since removed: best balanced accuracy on data/questions.jsonl against
        data/unanswerable.jsonl). Checked on the calibration questions alone (data/answerability_calibration.jsonl
        and data/unanswerable.jsonl, 126, none reported), 2026-12-05: balanced accuracy 0.667 at every threshold
        from 0.48 to 0.51 and 0.673 at 0.52 (one question more); 0.52 on the reported sets gave sample answered
        0.750 (0.783 at 0.48), held-out abstained 0.882 (0.765), covidfaq answered 0.695 (0.753) with citation [1]
        relevant 0.647 (0.660), PolicyQA 0.477 / 0.287 (0.547 / 0.311): 0.48 stays.
        With cross_abstention, evidence is P(answerable) from this score and the cross-encoder's best sentence logit
        (retriever.answers.answerability, fitted on calibration questions kept apart from every reported figure)
        and its threshold the fitted one. The false abstentions are the loose paraphrases: a question worded with
        none of the passage's words ("a church group is asking if they get it cheaper" for the non-profit
        discount) is, to both small models, as far from the KB as an out-of-scope one; such questions are shown
        the closest passages instead.
    cross_quotes: quote [1] comes from the reader's top document, and the cross-encoder
        (retriever.cross_encoder) reads the question with each candidate sentence to choose it
        (score + w_cross * logit). Off: the best-scoring sentence of that document.
    cross_abstention: evidence becomes P(answerable) from the evidence score and the best sentence
        logit (retriever.answers.answerability). Off by default: on real questions it refused more and quoted
        no better (covidfaq answered 0.76 -> 0.57, doc2dial 0.78 -> 0.59, PolicyQA 0.55 -> 0.36;
        `python -m eval.answers`); on the sample KB's out-of-scope questions it abstains more (0.77 ->
        0.91). Turn it on for a KB whose askers stray off its scope more than they paraphrase.
    memory_evidence: the question memory's recall counts as evidence: when the reader's question memory
        (retriever.question_recall) recalls one of the judged passages with vouched mass m (0..1: the attention of
        earlier questions confirmed to be answered by it, by the owner or by kb.MemoryConfig.vouching_users keys),
        evidence is at least m. A question the team confirmed, or a close paraphrase of one, is then answered again
        although its words are not the passage's. An empty memory changes nothing.
    w_cross: weight of the cross-encoder logit (about -11..+10) against the sentence score when choosing
        quote [1]; chosen on the calibration questions' key fact (`python -m eval.second_reader --fit`).
    cross_reads: how many of the top document's best-scoring sentences the cross-encoder reads to choose
        quote [1] (each costs a forward pass of the 12-layer model, ~8-15 ms on 2 cores). 4 against 8
        (2026-12-05, interleaved, load 4-6): 3.9 pairs per answer instead of 7.3, composition 119 instead of
        166 ms; the sample's key fact in quote [1] 0.729 instead of 0.750 (one question of 48), covidfaq,
        doc2dial and PolicyQA unchanged; 3 lost two more sample questions (0.708).
    """

    min_evidence: float | None = None
    w_coverage: float = 0.75
    w_sentence: float = 0.5
    w_passage: float = 0.3
    w_lexical: float = 0.2
    w_rank: float = 0.1
    max_sentences: int = 3
    max_chars: int = 600
    margin: float = 0.08
    related_cosine: float = 0.8
    duplicate_cosine: float = 0.9
    max_embedded: int = 8
    closest: int = 3
    cross_quotes: bool = True
    cross_abstention: bool = False
    w_cross: float = 0.2
    cross_reads: int = 4
    memory_evidence: bool = True
    llm: LLMConfig | None = None

    def __post_init__(self) -> None:
        if self.max_sentences < 1:
            raise KBError(f"max_sentences must be at least 1, not {self.max_sentences}")
        if self.max_chars < 20:
            raise KBError(f"max_chars must be at least 20, not {self.max_chars}")
        if self.max_embedded < 1:
            raise KBError(f"max_embedded must be at least 1, not {self.max_embedded}")
        if self.cross_reads < 1:
            raise KBError(f"cross_reads must be at least 1, not {self.cross_reads}")
        if self.min_evidence is not None and not 0.0 <= self.min_evidence <= 1.0:
            raise KBError(f"min_evidence must be between 0 and 1 (or None for the default), not {self.min_evidence}")

    @property
    def threshold(self) -> float:
        """The abstention threshold in use: min_evidence, else the default of the evidence in use."""
        if self.min_evidence is not None:
            return self.min_evidence
        return ANSWERABILITY.threshold if self.cross_abstention else EVIDENCE_THRESHOLD


@dataclass(frozen=True)
class Citation:
    """Source [n] of an answer.

    start/end: character span of quote in the document's full text (KnowledgeBase.document_text),
    i.e. chunk.char_start + the quote's offset in chunk.text; quote is that text verbatim.
    score: the sentence's answer score (see AnswerConfig).
    """

    n: int
    chunk_id: int
    doc_source: str
    doc_name: str
    doc_title: str
    doc_version: int
    page: int | None
    section: str | None
    start: int
    end: int
    quote: str
    score: float
    chunk: ChunkRecord

    @property
    def chunk_span(self) -> tuple[int, int]:
        """The quote's span inside chunk.text."""
        return self.start - self.chunk.char_start, self.end - self.chunk.char_start

    @property
    def where(self) -> str:
        """ "p. 2", "§ Section" or "" for display, with the OCR note of a scanned page (ChunkRecord.where)."""
        return self.chunk.where


@dataclass(frozen=True)
class Answer:
    """An answer with [n] markers, or an abstention.

    text: the answer; each [n] refers to citations[n-1]. Quotes are joined with their
    whitespace collapsed (PDF text is wrapped), the citation keeps them verbatim.
    abstained: the evidence was below the threshold; text is NOT_FOUND and closest holds
    the nearest retrieved passages. evidence / threshold: see AnswerConfig.
    search: the retrieval result (hits and the Hopfield diagnostics).
    signals: what the abstention read: "evidence_score" (the bi-encoder evidence) and "cross" (the
    cross-encoder's best sentence logit) when it ran. mode: "extractive" or "generative". notes: things the
    reader should know (an LLM that was unreachable, citations that were dropped). seconds: total time, retrieval included.
    """

    question: str
    text: str
    citations: tuple[Citation, ...]
    abstained: bool
    evidence: float
    threshold: float
    search: SearchResult
    closest: tuple[Hit, ...] = ()
    mode: str = "extractive"
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    signals: dict[str, float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ScoredSentence:
    """A candidate sentence of a retrieved chunk: span inside chunk.text and its scores; cross: the
    cross-encoder's logit for (question, sentence), None when it did not read it."""

    hit: Hit
    start: int
    end: int
    score: float
    cosine: float
    passage: float
    lexical: float
    vector: np.ndarray = field(repr=False, compare=False)
    cross: float | None = None

    @property
    def text(self) -> str:
        return self.hit.chunk.text[self.start : self.end]
