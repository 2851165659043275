"""The Insights page: what the KB could not answer, which documents to fix, and whether a fix worked (replay).

Only a signed-in session reaches it (ui/app/main.py signs in before any page). Figures and rows come from
ui/app/insights_view.py; the report from insights.build_insights over the KB's question log.
"""

from __future__ import annotations

import streamlit as st

from insights import Insights, InsightsConfig, build_insights, parse_when, replay
from kb import KBError, QuestionLog
from ui.app import insights_view as view
from ui.app import state as app_state
from ui.app.render import md_escape

TOP = 10


def _table(title: str, rows: list[dict], key: str) -> None:
    st.markdown(f"**{md_escape(title)}**")
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key=key)
    else:
        st.caption("none in this period")


def render() -> None:
    st.title("Insights")
    path = app_state.kb_dir()
    try:
        kb = app_state.knowledge_base(path)
    except KBError:
        st.info(md_escape(f"There is no knowledge base at {path} yet."), icon=":material/info:")
        return
    label = st.selectbox("Period", list(view.PERIODS), index=1, key="insights_period")
    if not QuestionLog(kb).exists():
        st.info("No questions have been logged yet: questions asked in the app and through the API appear here.")
        return
    report: Insights | None = None
    with app_state.shown_errors("Building the insights"), st.spinner("Reading the question log..."):
        report = build_insights(
            kb,
            since=parse_when(view.PERIODS[label]),
            config=InsightsConfig(top_topics=TOP),
            embedder=app_state.embedder(path),
        )
    if report is None:
        return
    for col, (name, value) in zip(st.columns(5), view.counts(report).items()):
        col.metric(name, value)

    st.subheader("Gap topics")
    st.caption("Questions not answered or thumbed down, grouped by meaning; trend: against the period before.")
    days = view.topic_days(report, TOP)
    if days:
        st.altair_chart(view.topic_chart(days), width="stretch")
    _table("Largest topics", view.topic_rows(report, TOP), "insights_topics")
    for t in report.topics[:TOP]:
        with st.expander(md_escape(f"{view.topic_label(t.id, t.examples)}: {t.action}")):
            st.markdown("\n".join(f"- {md_escape(q)}" for q in t.examples))
            for p in t.passages:
                st.caption(md_escape(f"{p.doc_title} ({p.doc_source} v{p.doc_version}, cosine {p.cosine:.2f}): {p.text}"))
    if report.topics and st.button("Replay the gap questions", icon=":material/replay:", key="insights_replay"):
        with app_state.shown_errors("Replaying"), st.spinner("Re-asking the gap questions against the current KB..."):
            again = replay(report.topics[:TOP], app_state.Settings().retriever_for(path))
            st.success(f"{again.answered} of {again.asked} gap question(s) are answered now ({again.share:.0%}).")
            st.dataframe(
                [
                    {"topic": f"#{r.topic + 1}", "re-asked": r.asked, "answered now": r.answered, "example": r.example}
                    for r in again.topics
                ],
                hide_index=True,
                width="stretch",
                key="insights_replayed",
            )

    st.subheader("Documents")
    thumbs = view.thumbs_down_rows(report)
    if thumbs:
        st.altair_chart(view.thumbs_chart(thumbs), width="stretch")
    for n, (title, rows) in enumerate(view.health_tables(report).items()):
        _table(title, rows, f"insights_health_{n}")
