"""Insights: what a collection could not answer and which documents to fix (the report of `kb insights`), and
the replay of its gap questions after a fix. Admin keys only.

A key scoped to nothing (every collection, every label) sees every question logged in the collection; any other
admin key sees only the questions it asked itself, and only the documents and passages its labels allow
(api.auth.Caller.questions_of and Caller.where).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Query

from api.auth import ADMIN, Caller
from api.schemas import InsightsResponse, ReplayResponse
from insights import (
    PERIOD_FORMS,
    PERIOD_MAX_LENGTH,
    Insights,
    InsightsConfig,
    build_insights,
    insights_dict,
    parse_when,
    replay,
    replay_dict,
)

router = APIRouter(tags=["insights"])

MAX_PERIOD_DAYS = 366  # the longest period one report reads (the log keeps 90 days by default)
MAX_TOP = 50  # topics in one reply
MAX_REPLAY = 500  # questions one replay re-asks (each is a full answer)
DAY = 86400.0

SINCE = Query("7d", max_length=PERIOD_MAX_LENGTH, description=f"Start of the period: {PERIOD_FORMS} (UTC).")
UNTIL = Query(None, max_length=PERIOD_MAX_LENGTH, description=f"End of the period (default: now): {PERIOD_FORMS}.")
TOP = Query(10, ge=1, le=MAX_TOP, description="Gap topics in the reply, largest first.")


def _period(since: str, until: str | None) -> tuple[float, float]:
    """(since, until) as Unix seconds; 422 naming the parameter and the reason."""
    now = time.time()
    bounds = {}
    for name, value in (("since", since), ("until", until)):
        if value is None:
            continue
        try:
            bounds[name] = parse_when(value, now)
        except ValueError as exc:
            raise HTTPException(422, f"{name}: {exc}") from None
    start, end = bounds["since"], bounds.get("until", now)
    if end <= start:
        raise HTTPException(422, "until: the period must end after it starts (since)")
    if end - start > MAX_PERIOD_DAYS * DAY:
        raise HTTPException(422, f"since: a period is at most {MAX_PERIOD_DAYS} days; this one is {(end - start) / DAY:.0f}")
    return start, end


def _report(caller: Caller, since: str, until: str | None, top: int) -> Insights:
    start, end = _period(since, until)
    return build_insights(
        caller.kb,
        since=start,
        until=end,
        config=InsightsConfig(top_topics=top),
        asked_by=caller.questions_of,
        where=caller.where(),
    )


@router.get("/v1/collections/{collection}/insights", response_model=InsightsResponse)
def insights(caller: Caller = ADMIN, since: str = SINCE, until: str | None = UNTIL, top: int = TOP) -> dict:
    """The period's counts, gap topics (size, trend, examples, nearest passages, suggested action) and document
    health, as `kb insights --json` prints them, within what the key may see."""
    return insights_dict(_report(caller, since, until, top), top)


@router.post("/v1/collections/{collection}/insights/replay", response_model=ReplayResponse)
def insights_replay(caller: Caller = ADMIN, since: str = SINCE, until: str | None = UNTIL, top: int = TOP) -> dict:
    """Re-ask the gap questions of the period's `top` largest topics against the current KB: how many are
    answered now, per topic (at most MAX_REPLAY questions; 422 beyond, naming how to narrow it)."""
    report = _report(caller, since, until, top)
    topics = report.topics[:top]
    asked = sum(len(t.questions) for t in topics)
    if asked > MAX_REPLAY:
        raise HTTPException(422, f"top: {asked} questions to re-ask; at most {MAX_REPLAY}: lower top or shorten the period")
    again = replay(
        topics, caller.services.collections.retriever(caller.collection_name, "hopfield", 5), where=caller.where()
    )
    return replay_dict(again)
