"""Cited answers: pick the retrieved sentences that answer a question, or say the KB does not hold it.

The extractive reader (default, offline) splits the retrieved passages into
sentences, scores each against the question and composes the best few into a
short answer with [n] markers. Every marker maps to a Citation: a retrieved
chunk plus the character span of the quoted sentence in the document text, and
the sentence verbatim. When the evidence is weak the answer abstains and lists
the closest passages instead.

Sentences are scored in two passes so that composing costs about what retrieving
did: a cheap pass (passage cosine from the stored vectors, IDF-weighted word
overlap) keeps the max_embedded most promising sentences, and only those are
embedded and scored by meaning. The evidence score is computed here, never from
the retriever's own scores, so the calibrated abstention threshold holds for
every retriever and survives changes to the Hopfield reader.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from kb import DocumentFilter
from retriever.answers.answerability import ANSWERABILITY
from retriever.answers.evidence import coverage, idf_weights, typo_repairs, weighted_overlap
from retriever.answers.llm import LLMError, condense, generate
from retriever.answers.sentence_vectors import embed_sentences, passage_cosines, sentence_text
from retriever.answers.sentences import TABLE_ROW, content_tokens, is_candidate, split_sentences
from retriever.answers.types import NOT_FOUND, Answer, AnswerConfig, Citation, ScoredSentence
from retriever.base import Retriever, check_query
from retriever.conversation import HistoryConfig, parse_history, with_previous_question, within_budget
from retriever.cross_encoder import load_cross_encoder
from retriever.results import Hit, MemorySuggestion

log = logging.getLogger(__name__)

__all__ = [
    "NOT_FOUND",
    "Answer",
    "AnswerConfig",
    "Citation",
    "abstention_signals",
    "answer",
    "compose",
    "coverage",
    "evidence_of",
    "score_sentences",
    "select_sentences",
]


def evidence_of(
    question: str,
    retriever: Retriever,
    hits: tuple[Hit, ...],
    scored: list[ScoredSentence],
    config: AnswerConfig,
    repaired: str | None = None,
) -> float:
    """The abstention signal (see AnswerConfig): coverage mixed with the best sentence score.

    Coverage is taken of the question as typed or as repaired by the reader, whichever is higher:
    "refnd" is not a word the KB lacks; but only the repairs that are typos count (evidence.typo_repairs).
    The sentence score leaves out the retriever's rank, so the threshold does not depend on the retriever.
    """
    best = max(
        (config.w_sentence * s.cosine + config.w_passage * s.passage + config.w_lexical * s.lexical for s in scored),
        default=0.0,
    )
    cov = coverage(question, retriever.kb, hits)
    checked = typo_repairs(question, repaired) if repaired and repaired != question else question
    if content_tokens(checked) != content_tokens(question):  # a repair that counts: its words read from the KB
        cov = max(cov, coverage(checked, retriever.kb, hits))
    return config.w_coverage * cov + (1 - config.w_coverage) * best


def _is_heading(sentence: str, hit: Hit) -> bool:
    """A line that only repeats the chunk's section or document title (HTML and PDF headings carry no marker)."""
    flat = " ".join(sentence.split()).rstrip(".:").casefold()
    c = hit.chunk
    return flat in {" ".join((c.section or "").split()).casefold(), " ".join(c.doc_title.split()).casefold()}


def score_sentences(
    question: str, retriever: Retriever, hits: tuple[Hit, ...], config: AnswerConfig, qvec: np.ndarray | None = None
) -> list[ScoredSentence]:
    """The max_embedded most promising candidate sentences of hits, scored, best first.

    qvec: the question's embedding (embedded here when None).
    """
    if not hits:
        return []
    if qvec is None:
        qvec = retriever.embed_queries([question])[0]
    passage_cos = passage_cosines(retriever, qvec, hits)
    q_tokens = content_tokens(question)
    weights = idf_weights(set(q_tokens), retriever.kb)
    rough: list[tuple[float, int, int, int, float]] = []  # (cheap score, hit, start, end, lexical)
    seen: set[str] = set()
    for i, hit in enumerate(hits):
        chunk = hit.chunk
        for span in split_sentences(chunk.text):
            sentence = chunk.text[span.start : span.end]
            key = " ".join(sentence.lower().split())
            if key in seen or not is_candidate(sentence, span.heading) or _is_heading(sentence, hit):
                continue
            seen.add(key)
            lex = weighted_overlap(weights, content_tokens(sentence))
            prior = config.w_passage * float(passage_cos[i]) + config.w_rank / hit.rank
            rough.append((prior + config.w_lexical * lex, i, span.start, span.end, lex))
    if not rough:
        return []
    rough.sort(key=lambda r: -r[0])
    kept = rough[: config.max_embedded]
    texts = [sentence_text(hits[i].chunk.section, hits[i].chunk.text[a:b]) for _, i, a, b, _ in kept]
    vectors = embed_sentences(retriever.embedder, texts)
    out = []
    for (_, i, start, end, lex), vec in zip(kept, vectors):
        cos = float(vec @ qvec)
        score = (
            config.w_sentence * cos
            + config.w_passage * float(passage_cos[i])
            + config.w_rank / hits[i].rank
            + config.w_lexical * lex
        )
        out.append(ScoredSentence(hits[i], start, end, score, cos, float(passage_cos[i]), lex, vec))
    out.sort(key=lambda s: -s.score)
    texts_of = {(hits[i].chunk.id, a): t for (_, i, a, _, _), t in zip(kept, texts)}
    out = _read_by_cross_encoder(question, out, texts_of, hits[0].chunk.doc_id, config)
    return _first_quote(out, hits[0].chunk.doc_id, config)


def _read_by_cross_encoder(
    question: str, scored: list[ScoredSentence], texts: dict[tuple[int, int], str], top_doc: int, config: AnswerConfig
) -> list[ScoredSentence]:
    """scored with .cross set where the second reader read the sentence; texts: (chunk id, start) -> the
    sentence as embedded, under its section. With cross_abstention it reads them all; else only the best
    cross_reads of the top document by score, the only ones it chooses quote [1] among."""
    if not (config.cross_abstention or config.cross_quotes):
        return scored
    read = [k for k, s in enumerate(scored) if config.cross_abstention or s.hit.chunk.doc_id == top_doc]
    read = read if config.cross_abstention else read[: config.cross_reads]
    logits = load_cross_encoder().score(question, [texts[(scored[k].hit.chunk.id, scored[k].start)] for k in read])
    out = list(scored)
    for k, logit in zip(read, logits):
        out[k] = replace(out[k], cross=float(logit))
    return out


def _first_quote(scored: list[ScoredSentence], top_doc: int, config: AnswerConfig) -> list[ScoredSentence]:
    """scored with quote [1] re-chosen among the sentences of the reader's top document (all, if it has none
    among them): the best by score, plus w_cross * the cross-encoder logit when config.cross_quotes.

    Measured (dump of the top-8 sentences; `python -m eval.answers` for the shipped figures): on covidfaq,
    citation [1] from a relevant entry rose from 0.533 to 0.648 (the reader's top entry is right more often
    than the entry of the best-scoring sentence); the cross-encoder then picks the fact inside it, which
    took the sample's key fact in quote [1] from 0.60 to 0.65. Letting the cross-encoder pick across
    documents lowered covidfaq to 0.43: the literal model prefers an entry that repeats the question's words.
    """
    if not scored:
        return scored
    inside = [s for s in scored if s.hit.chunk.doc_id == top_doc] or scored
    # An unread sentence has no logit; counted as 0 it would beat every read one the model doubts.
    inside = [s for s in inside if s.cross is not None] or inside
    weight = config.w_cross if config.cross_quotes else 0.0
    first = max(inside, key=lambda s: s.score + weight * (s.cross if s.cross is not None else 0.0))
    return [first] + [s for s in scored if s is not first]


def quoted_document(hits: tuple[Hit, ...], scored: list[ScoredSentence]) -> tuple[tuple[Hit, ...], list[ScoredSentence]]:
    """(hits, sentences) the abstention judges: all of them, unless quote [1] comes from another document
    than the reader's first (which had nothing quotable: only headings or questions). Then only that
    document's: the words of a heading in the first document must not vouch for a sentence quoted from
    another ("refund window" found in a heading, "annual plan" quoted from the shipping policy)."""
    if not scored or scored[0].hit.chunk.doc_id == hits[0].chunk.doc_id:
        return hits, scored
    doc = scored[0].hit.chunk.doc_id
    return tuple(h for h in hits if h.chunk.doc_id == doc), [s for s in scored if s.hit.chunk.doc_id == doc]


def abstention_signals(
    question: str,
    retriever: Retriever,
    hits: tuple[Hit, ...],
    scored: list[ScoredSentence],
    config: AnswerConfig,
    repaired: str | None = None,
    memory: tuple[MemorySuggestion, ...] = (),
) -> tuple[float, dict[str, float]]:
    """(evidence, signals): the figure compared with config.threshold, and what it was made of.

    By default evidence is the bi-encoder evidence score (evidence_of); with config.cross_abstention,
    P(answerable) from that score and the best sentence logit (retriever.answers.answerability). With
    config.memory_evidence, at least the vouched mass the question memory recalled for one of hits (memory: the
    reader's suggestions, retriever.question_recall), signal "memory".
    """
    score = evidence_of(question, retriever, hits, scored, config, repaired)
    crosses = [s.cross for s in scored if s.cross is not None]
    signals = {"evidence_score": score}
    if crosses:
        signals["cross"] = max(crosses)
    evidence = score
    if config.cross_abstention:
        evidence = ANSWERABILITY.probability(score, signals.get("cross", ANSWERABILITY.cross_low))
    shown = {h.chunk.id for h in hits} if config.memory_evidence and memory else set()
    recalled = max((m.vouched_mass for m in memory if m.chunk_id in shown), default=0.0)
    if recalled > 0:
        # A question the team confirmed this passage answers (or a close paraphrase of one) is answered again,
        # though its words are not the passage's: "a church group is asking if they get it cheaper". Only vouched
        # confirmations count (kb.MemoryConfig.vouching_users): one API key alone cannot make the bot answer.
        signals["memory"] = recalled
        evidence = max(evidence, recalled)
    if not math.isfinite(evidence):  # NaN < threshold is false: a figure that is no number must abstain, not answer
        # Seen in the security tests on an AMX machine, its source not yet found: the signals say which it was.
        log.warning("an answer's evidence was not a number (%s); it abstains", signals)
        evidence = 0.0
    return evidence, signals


def select_sentences(scored: list[ScoredSentence], config: AnswerConfig) -> list[ScoredSentence]:
    """The best sentence, then others that bear on the question as much (within margin of its score,
    and as close in meaning or as close in words), skipping near-duplicates, within the length caps."""
    chosen: list[ScoredSentence] = []
    length = 0
    for s in scored:
        if len(chosen) >= config.max_sentences:
            break
        if chosen:
            best = chosen[0]
            if s.score < best.score - config.margin:
                break
            if s.cosine < config.related_cosine * best.cosine and s.lexical < best.lexical:
                continue
        if any(float(s.vector @ c.vector) >= config.duplicate_cosine for c in chosen):
            continue
        size = len(" ".join(s.text.split()))
        if chosen and length + size > config.max_chars:
            continue
        chosen.append(s)
        length += size + 5
    return chosen


def _citation(n: int, s: ScoredSentence) -> Citation:
    c = s.hit.chunk
    return Citation(
        n=n,
        chunk_id=c.id,
        doc_source=c.doc_source,
        doc_name=c.doc_name,
        doc_title=c.doc_title,
        doc_version=c.doc_version,
        page=c.page,
        section=c.section,
        start=c.char_start + s.start,
        end=c.char_start + s.end,
        quote=s.text,
        score=s.score,
        chunk=c,
    )


def _clip(sentence: str, limit: int) -> str:
    flat = " ".join(sentence.split())
    flat = flat + "." if TABLE_ROW.match(flat) and not flat.endswith(".") else flat
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def compose(chosen: list[ScoredSentence], config: AnswerConfig) -> tuple[str, tuple[Citation, ...]]:
    """Answer text with [n] after each quoted sentence, and the citations in marker order."""
    citations = tuple(_citation(n, s) for n, s in enumerate(chosen, start=1))
    text = " ".join(f"{_clip(c.quote, config.max_chars)} [{c.n}]" for c in citations)
    return text, citations


def answer(
    question: str,
    retriever: Retriever,
    config: AnswerConfig = AnswerConfig(),
    where: DocumentFilter | None = None,
    history: Sequence[Any] | None = None,
    history_config: HistoryConfig = HistoryConfig(),
) -> Answer:
    """Answer question from what retriever finds in its KB (only in the documents where allows).

    history: the conversation before question ([{"role", "content"}] or Turn objects, oldest first): the
    question is retrieved as a follow-up (retriever.conversation), its quotes are chosen for the question
    read after the previous user turn, and it abstains when its own words are not in what was found.
    Raises KBError for an empty question or KB, or a malformed history. With config.llm set, the answer is
    generated (falling back to the extractive answer, with a note, when the endpoint fails).
    """
    started = time.perf_counter()
    question = check_query(question)
    turns = within_budget(parse_history(history), history_config) if history else ()
    asked_as, notes = question, ()  # type: str, tuple[str, ...]
    if config.llm is not None and turns:
        # With an LLM at hand, the follow-up is first rewritten to stand alone; the conversation is still read.
        try:
            asked_as = condense(question, turns, config.llm)
            notes = (f"read as: {asked_as}",)
        except LLMError as exc:
            notes = (f"the follow-up could not be rewritten ({exc}); it was read with the conversation",)
    result = retriever.search(asked_as, where=where, history=turns, history_config=history_config)
    repaired = result.diagnostics.query_used if result.diagnostics and result.diagnostics.query_used else asked_as
    # The reader's repaired question when it has one: "refnd" means refund to the sentences too.
    asked, scoring = question, repaired
    if asked_as != question:
        asked = scoring = repaired
    elif result.history is not None:
        scoring = with_previous_question(turns, repaired)
        # A follow-up's own words decide whether the KB holds its answer ("and for my daughter?"); one with
        # none of its own ("why?") is judged with the question before it.
        if not content_tokens(question):
            asked = repaired = with_previous_question(turns, question)
    qvec = retriever.embed_queries([scoring])[0]
    scored = score_sentences(scoring, retriever, result.hits, config, qvec)
    read, judged = quoted_document(result.hits, scored)
    memory = result.diagnostics.memory if result.diagnostics else ()
    evidence, signals = abstention_signals(asked, retriever, read, judged, config, repaired, memory)
    threshold = config.threshold

    def reply(text: str, citations: tuple[Citation, ...] = (), mode: str = "extractive") -> Answer:
        # Every way out shares the question's reading; NOT_FOUND is an abstention, shown the closest passages.
        abstained = text == NOT_FOUND
        return Answer(
            question=question,
            text=text,
            citations=() if abstained else citations,
            abstained=abstained,
            evidence=evidence,
            threshold=threshold,
            search=result,
            closest=result.hits[: config.closest] if abstained else (),
            mode=mode,
            notes=notes,
            seconds=time.perf_counter() - started,
            signals=signals,
        )

    if evidence < threshold:
        return reply(NOT_FOUND)
    if config.llm is not None:
        try:
            text, citations, more = generate(asked_as, result.hits, scored, config)
            notes = notes + tuple(more)
            # An uncited claim cannot be checked: abstain and show the passages instead.
            return reply(text if citations else NOT_FOUND, citations, mode="generative")
        except LLMError as exc:
            notes = notes + (f"generative answer unavailable ({exc}); showing the extractive answer",)
    text, citations = compose(select_sentences(scored, config), config)
    # No sentence to quote (a follow-up judged by its previous question can find none of its own): an answer
    # without a citation cannot be checked, so it abstains like any other.
    return reply(text if citations else NOT_FOUND, citations)
