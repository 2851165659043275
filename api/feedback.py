"""Feedback into the question memory, applied in batches: a burst of thumbs costs one recall-index rebuild, not one each.

Each thumbs up/down is stored in the feedback table at once (the reply carries its id); what it
teaches the question memory is queued and applied by one background thread every FLUSH_SECONDS.
The reader rebuilds its recall index when the memory's version moves, on its next question, so
however many keys give feedback, the index is rebuilt at most once per flush. The rate of feedback
per key is limited at the gate (feedback_limit, api/limits.py).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable

from retriever import learn_from_feedback

log = logging.getLogger("hopfield_kb.api")
FLUSH_SECONDS = 2.0
MAX_QUEUED = 10_000  # past this, feedback is still stored but no longer teaches the memory until the queue drains


@dataclass(frozen=True)
class Lesson:
    collection: str
    question: str
    chunk_id: int
    helpful: bool
    user: str


class FeedbackLearner:
    """Queues lessons and applies them in batches; kb_for(collection) gives the KnowledgeBase to teach."""

    def __init__(self, kb_for: Callable[[str], object], flush_seconds: float = FLUSH_SECONDS) -> None:
        self._kb_for = kb_for
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue[Lesson] = queue.Queue(MAX_QUEUED)
        self._thread = threading.Thread(target=self._run, name="feedback-learner", daemon=True)
        self._thread.start()

    def add(self, lesson: Lesson) -> bool:
        """Queue lesson; False when the queue is full (the feedback row is kept, the lesson dropped)."""
        try:
            self._queue.put_nowait(lesson)
            return True
        except queue.Full:
            return False

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = threading.Event()
            deadline.wait(self._flush_seconds)  # gather what else arrives meanwhile
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for lesson in batch:
                try:
                    learn_from_feedback(
                        self._kb_for(lesson.collection), lesson.question, [lesson.chunk_id], lesson.helpful, user=lesson.user
                    )
                except Exception:  # noqa: BLE001 - one bad lesson must not stop the learner
                    log.exception("feedback could not be applied to the question memory")
