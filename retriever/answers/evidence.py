"""Word statistics the answer layer weighs sentences and abstention by: IDF over the KB's chunks.

A question word the KB rarely uses (D05, Amex, SAML) says more about which sentence answers
it than one every chunk holds (Tallyo, invoice); a question word the retrieved passages never
use (Shopify, payroll) says the KB may not hold the answer at all.
"""

from __future__ import annotations

from kb import KnowledgeBase, retrieval_text
from retriever.answers.sentences import WORDS, content_tokens, lexical_overlap, quantity_words
from retriever.corpus import corpus_for
from retriever.results import Hit


def idf_weights(words: set[str] | tuple[str, ...], kb: KnowledgeBase) -> dict[str, float]:
    """ln((N + 1) / (df + 0.5)) of each word over the KB's chunks: > 0, largest for words the KB lacks
    (read from the KB's word index, kept current by every commit)."""
    return corpus_for(kb).idf(set(words))


def weighted_overlap(weights: dict[str, float], tokens: tuple[str, ...]) -> float:
    """IDF-weighted share (0..1) of the weighted words found among tokens, typos and inflections allowed."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    have = tuple(set(tokens))
    return sum(w for word, w in weights.items() if lexical_overlap((word,), have) > 0) / total


def typo_repairs(typed: str, repaired: str) -> str:
    """repaired (the reader's repair of typed), keeping only the replacements that are typos of the typed word
    ("refnd" -> "refund"); the others are put back ("Zapier" -> "tier", "Peppol" -> "people": the reader's
    vocabulary settles an unknown name on the nearest KB word, which finds passages but proves nothing)."""
    before, after = WORDS.findall(typed), WORDS.findall(repaired)
    if len(before) != len(after):
        return typed
    return " ".join(a if lexical_overlap((b.lower(),), (a.lower(),)) > 0 else b for b, a in zip(before, after))


def coverage(question: str, kb: KnowledgeBase, hits: tuple[Hit, ...]) -> float:
    """IDF-weighted share (0..1) of the question's content words found in the hits' text, title or section.

    The quantity word of "how long", "how many" counts where the hits hold it (an FAQ entry asking the same)
    and is left out where they do not: a policy that says "within 14 days" answers "how long" without "long".
    """
    words = set(content_tokens(question))
    if not words or not hits:
        return 0.0
    have: list[str] = []
    for hit in hits:
        c = hit.chunk
        have.extend(content_tokens(retrieval_text(c.doc_title, c.section, c.text)))
    weights = idf_weights(words, kb)
    share = weighted_overlap(weights, tuple(have))
    optional = quantity_words(question) & words
    if optional and words - optional:
        share = max(share, weighted_overlap({w: x for w, x in weights.items() if w not in optional}, tuple(have)))
    return share
