"""After a fix: re-ask the period's gap questions against the current KB and count, per topic, how many are
now answered (the answer layer no longer abstains)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from insights.gaps import GapTopic
from kb import DocumentFilter
from retriever import AnswerConfig, Retriever, answer


@dataclass(frozen=True)
class TopicReplay:
    """A topic's questions re-asked: how many, and how many are answered now."""

    topic: int
    asked: int
    answered: int
    example: str


@dataclass(frozen=True)
class Replay:
    """Every topic's replay, and the totals; share: answered / asked (0 when nothing was asked)."""

    topics: tuple[TopicReplay, ...]
    asked: int
    answered: int

    @property
    def share(self) -> float:
        return self.answered / self.asked if self.asked else 0.0


def replay(
    topics: list[GapTopic] | tuple[GapTopic, ...],
    retriever: Retriever,
    config: AnswerConfig | None = None,
    where: DocumentFilter | None = None,
) -> Replay:
    """Re-ask each topic's questions through retriever.answer, a follow-up after the question it followed
    (config: the answer settings, default ones; where: the documents the answers may come from, a scoped
    reader's)."""
    config = config or AnswerConfig()
    out = []
    for t in topics:
        contexts = t.contexts or (None,) * len(t.questions)
        answered = sum(
            # A follow-up is asked again after the question it followed, as it was meant.
            not answer(q, retriever, config, where=where, history=[{"role": "user", "content": c}] if c else None).abstained
            for q, c in zip(t.questions, contexts)
        )
        out.append(TopicReplay(t.id, len(t.questions), answered, t.examples[0] if t.examples else ""))
    return Replay(tuple(out), sum(r.asked for r in out), sum(r.answered for r in out))


def replay_dict(again: Replay) -> dict:
    """The replay as JSON values (`kb insights --replay --json` and the API): its fields and share (3 decimals)."""
    return {**asdict(again), "share": round(again.share, 3)}
