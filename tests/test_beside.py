"""retriever.beside: a large KB's BM25 top-K scored in the helper thread gives the ranking the asking thread gives,
the work runs there only while the helper is idle, and what it raises reaches the asker."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import retriever.beside
import retriever.hopfield as hopfield
from data import SAMPLE_QUESTIONS
from retriever import make_retriever
from retriever.beside import BESIDE_FROM, beside
from tests.helpers import read_questions

LARGE = BESIDE_FROM  # chunks of a KB large enough for the hand-off


def test_work_handed_to_an_idle_helper_runs_there_and_a_busy_helper_leaves_it_to_the_asker():
    here = threading.get_ident()
    release = threading.Event()
    first = beside(lambda: (release.wait(10), threading.get_ident())[1], LARGE)  # the helper is busy until released
    second = beside(threading.get_ident, LARGE)  # so this runs in the asking thread, at once
    assert second() == here
    release.set()
    assert first() != here
    assert beside(threading.get_ident, LARGE)() != here  # idle again: handed over
    assert beside(threading.get_ident, LARGE - 1)() == here  # a smaller KB's work is not worth the hand-off


def test_what_the_helper_raises_reaches_the_asker_and_frees_the_helper():
    def fail() -> None:
        raise ValueError("the snapshot moved")

    with pytest.raises(ValueError, match="snapshot moved"):
        beside(fail, LARGE)()
    assert beside(threading.get_ident, LARGE)() != threading.get_ident()


def test_the_reader_ranks_alike_with_its_words_scored_beside_or_inline(sample_kb, embedder, monkeypatch):
    questions = [q["question"] for q in read_questions(SAMPLE_QUESTIONS)]  # clean and garbled: repairs re-embedded meanwhile
    reader = make_retriever("hopfield", sample_kb, embedder)
    inline = [reader.rank([q])[0] for q in questions]  # one at a time both ways: a batch moves bf16 vectors
    handed: list[int] = []
    real = hopfield.beside
    monkeypatch.setattr(retriever.beside, "BESIDE_FROM", 0)  # the sample KB as if it were large
    monkeypatch.setattr(hopfield, "beside", lambda work, chunks: (handed.append(1), real(work, chunks))[1])
    assert reader.rank(questions[:1]) and handed  # the helper path was taken
    for q, a in zip(questions, inline):
        b = reader.rank([q])[0]
        assert b.ids.tolist() == a.ids.tolist()
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-5)
