"""What the Insights page shows, as plain rows and chart specs (testable without a browser or Streamlit).

Every function reads an insights.Insights report (insights.build_insights) and returns list-of-dict rows for
st.dataframe or an Altair chart; ui/app/insights_page.py lays them out.
"""

from __future__ import annotations

import time

from insights import Insights, trend

# The period picker: label -> insights.parse_when span.
PERIODS = {"Last 24 hours": "24h", "Last 7 days": "7d", "Last 30 days": "30d", "Last 90 days": "90d"}


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def counts(report: Insights) -> dict[str, int]:
    """The period's headline figures, in the order the page shows them."""
    return {
        "Questions": report.asked,
        "Answered": report.answered,
        "Not answered": report.abstained,
        "Thumbs down": report.thumbs_down,
        "Gap topics": len(report.topics),
    }


def topic_label(topic_id: int, examples: tuple[str, ...]) -> str:
    """ "#1 how do I export to Excel" (the topic's number and its first example, cut to 40 characters)."""
    first = examples[0] if examples else ""
    return f"#{topic_id + 1} " + (first if len(first) <= 40 else first[:39] + "…")


def topic_rows(report: Insights, top: int) -> list[dict]:
    """One row per gap topic (the top largest): size, trend, examples, nearest passage, suggested action."""
    rows = []
    for t in report.topics[:top]:
        near = t.passages[0] if t.passages else None
        rows.append(
            {
                "topic": topic_label(t.id, t.examples),
                "questions": t.size,
                "trend": trend(t),
                "examples": " | ".join(t.examples),
                "nearest passage": f"{near.doc_title} ({near.doc_source} v{near.doc_version}, {near.cosine:.2f})"
                if near
                else "",
                "suggested action": t.action,
            }
        )
    return rows


def topic_days(report: Insights, top: int) -> list[dict]:
    """(day, topic, questions) for each day each of the top topics had questions: topic sizes over time."""
    return [
        {"day": day, "topic": topic_label(t.id, t.examples), "questions": n}
        for t in report.topics[:top]
        for day, n in t.by_day
    ]


def thumbs_down_rows(report: Insights) -> list[dict]:
    """Documents by thumbs down in the period, with their thumbs-down rate."""
    return [
        {"document": d.source, "title": d.title, "thumbs down": d.thumbs_down, "rate": round(d.down_rate, 2)}
        for d in report.health.most_thumbs_down
    ]


def health_tables(report: Insights) -> dict[str, list[dict]]:
    """Document health as titled tables (empty ones included, so the page can say "none")."""
    h = report.health
    return {
        "Most cited": [{"document": d.source, "title": d.title, "answers": d.citations} for d in h.most_cited],
        "Least cited": [{"document": d.source, "title": d.title, "answers": d.citations} for d in h.least_cited],
        "Never cited": [{"document": s} for s in h.never_cited],
        "Thumbs down by document": thumbs_down_rows(report),
        "Thumbs down by passage": [
            {"passage": p.chunk_id, "document": p.doc_source, "thumbs down": p.thumbs_down, "rate": round(p.down_rate, 2)}
            for p in h.passages_thumbs_down
        ],
        "Answers from replaced versions": [
            {
                "question": s.question,
                "asked": _day(s.at),
                "document": s.doc_source,
                "cited version": s.cited_version,
                "now": f"v{s.current_version}" if s.current_version else "removed",
            }
            for s in h.stale
        ],
        "Not updated for a year (exports)": [{"document": s, "updated_at": u} for s, u in h.outdated],
    }


def topic_chart(rows: list[dict]):
    """Lines: questions per day of each gap topic (topic_days rows)."""
    import altair as alt

    return (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("questions:Q", title="questions"),
            color=alt.Color("topic:N", title="topic"),
            tooltip=["day:T", "topic:N", "questions:Q"],
        )
        .properties(height=280)
    )


def thumbs_chart(rows: list[dict]):
    """Bars: thumbs down per document (thumbs_down_rows rows)."""
    import altair as alt

    data = [{"document": r["document"], "thumbs_down": r["thumbs down"], "rate": r["rate"]} for r in rows]
    return (
        alt.Chart(alt.Data(values=data))
        .mark_bar()
        .encode(
            x=alt.X("thumbs_down:Q", title="thumbs down", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("document:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            tooltip=["document:N", "thumbs_down:Q", "rate:Q"],
        )
        .properties(height=60 + 32 * len(data))
    )
