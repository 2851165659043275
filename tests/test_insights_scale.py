"""Insights at scale, on constructed data (no model): repeats, the sparse update, the blocked greedy grouping,
the trend against the period before, and the question vectors the log keeps for insights."""

from __future__ import annotations

import numpy as np
import torch

from insights import GapTopic, TopicConfig, hopfield_labels, hopfield_states, trend
from insights.gaps import previous_sizes
from insights.topics import _attractors, unit
from kb import KnowledgeBase, NewEntry, QuestionLog

DAY = 86400.0


def clusters(rng: np.random.Generator, n: int, k: int, noise: float = 0.3, d: int = 64) -> np.ndarray:
    centres = rng.normal(size=(k, d))
    return unit(centres[rng.integers(0, k, n)] + noise * rng.normal(size=(n, d)))


def test_repeated_questions_weigh_in_by_count_and_share_their_topic(rng):
    x = clusters(rng, 40, 4)
    rows = np.concatenate([np.arange(40), rng.integers(0, 40, 60)])  # 60 repeats
    full = torch.from_numpy(x[rows])
    want = full
    for _ in range(3):  # the update over every row, repeats included
        want = torch.softmax(40.0 * (want @ full.T), dim=-1) @ full
    np.testing.assert_allclose(hopfield_states(x[rows], beta=40.0, steps=3), want.numpy(), atol=1e-5)
    labels = hopfield_labels(x[rows], TopicConfig())
    for i, r in enumerate(rows):
        assert labels[i] == labels[r]


def test_the_sparse_update_matches_the_exact_one_on_clustered_questions(rng):
    x = clusters(rng, 600, 20)
    exact = hopfield_states(x, beta=40.0, steps=8, exact_up_to=10**6)
    sparse = hopfield_states(x, beta=40.0, steps=8, exact_up_to=0, neighbours=64)
    assert np.min(np.sum(unit(exact) * unit(sparse), axis=1)) > 0.999


def test_the_blocked_greedy_grouping_is_the_one_by_one_greedy(rng):
    states = unit(np.concatenate([clusters(rng, 300, 12, noise=0.05), clusters(rng, 50, 50, noise=0.0)]))
    want, anchors = [], []
    for s in states:  # the greedy as first written: the closest anchor so far, if close enough
        sims = [float(a @ s) for a in anchors]
        j = int(np.argmax(sims)) if sims else -1
        if sims and sims[j] >= 0.95:
            want.append(j)
        else:
            want.append(len(anchors))
            anchors.append(s)
    for block in (1, 7, 512):
        assert _attractors(states, 0.95, block=block).tolist() == want


def _topic(i: int, size: int, previous: int | None) -> GapTopic:
    return GapTopic(i, size, (), (), (), "no document covers this: add one", None, {}, (), previous)


def test_each_topic_is_compared_with_the_period_before():
    current = unit(np.eye(3, 8, dtype=np.float32))
    labels = [0, 0, 1]  # two questions in topic 0, one in topic 1
    earlier = unit(np.array([[1, 0.1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0]], np.float32))
    assert previous_sizes(2, current, labels, earlier, 0.8) == [1, 1]  # the third question is like none of them
    assert previous_sizes(2, current, labels, earlier[:0], 0.8) == [0, 0]
    assert [trend(_topic(0, 5, p)) for p in (None, 0, 2, 5, 7)] == ["", "new", "+3", "0", "-2"]


def test_the_log_keeps_question_vectors_until_retention_removes_their_last_entry(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb", create=True)
    log = QuestionLog(kb)
    now = 1_000 * DAY
    ids = log.record_many(
        [
            NewEntry(now - 100 * DAY, "old question mail a@b.org", "abstained"),
            NewEntry(now - 1 * DAY, "kept question", "abstained"),
            NewEntry(now - 95 * DAY, "kept question", "answered"),
        ],
        now=now,
    )
    assert len(ids) == 3  # entries at their own times, redacted; pruned at `now`, before they were written
    assert [e.question for e in log.entries()] == ["old question mail [email]", "kept question", "kept question"]
    v = np.arange(4, dtype=np.float32).tobytes()
    log.save_vectors({"old question mail [email]": v, "kept question": v}, "m")
    assert set(log.vectors(["old question mail [email]", "kept question", "other"], "m")) == {
        "old question mail [email]",
        "kept question",
    }
    assert log.vectors(["kept question"], "another model") == {}
    log.record("new", "answered", now=now)  # prunes what is older than 90 days
    assert [e.question for e in log.entries()] == ["kept question", "new"]
    assert set(log.vectors(["old question mail [email]", "kept question"], "m")) == {"kept question"}


def test_a_vector_given_at_log_time_is_kept_only_for_a_question_redaction_left_unchanged(tmp_path):
    log = QuestionLog(KnowledgeBase(tmp_path / "kb", create=True))
    v = np.ones(4, np.float32).tobytes()
    log.record("How do refunds work?", "answered", vector=v, model="m")
    log.record("Refund to jo@example.com please", "abstained", vector=v, model="m")
    log.record("No model given", "abstained", vector=v)
    assert log.vectors(["How do refunds work?", "Refund to [email] please", "No model given"], "m") == {
        "How do refunds work?": v
    }
