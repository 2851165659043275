"""The evaluation page: retrieval quality on a labelled question set, and feedback exported as such a set."""

from __future__ import annotations

import json

import streamlit as st

from data import SAMPLE_QUESTIONS
from kb import KBError, KnowledgeBase
from retriever import RETRIEVERS
from ui.app import state as app_state
from ui.app.files import feedback_jsonl, feedback_questions
from ui.app.render import md_escape

MAX_SET_MB = 5


def parse_labelled_set(text: str, name: str) -> list[dict]:
    """JSON-lines records with "question" and "relevant" (list of document file names); KBError names the bad line."""
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KBError(f"{name} line {i}: not JSON ({exc.msg}); each line must be one JSON object") from exc
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("question"), str)
            or not isinstance(rec.get("relevant"), list)
            or not rec["relevant"]
        ):
            raise KBError(f'{name} line {i}: needs "question" (text) and "relevant" (a list of file names)')
        rec.setdefault("id", f"{name}:{i}")
        out.append(rec)
    if not out:
        raise KBError(f"{name} holds no questions")
    return out


def _labelled_set(kb: KnowledgeBase) -> tuple[str, list[dict]] | None:
    source = st.radio(
        "Labelled set",
        ["Sample questions (data/questions.jsonl)", "Feedback from this app", "Upload a JSONL file"],
        key="eval_source",
        horizontal=True,
    )
    if source.startswith("Sample"):
        return "sample", parse_labelled_set(SAMPLE_QUESTIONS.read_text(), SAMPLE_QUESTIONS.name)
    if source.startswith("Feedback"):
        records = feedback_questions(kb)
        if not records:
            st.info("No confirmed answers yet: give a thumbs-up to answers on the Ask page.", icon=":material/info:")
            return None
        return "feedback", records
    up = st.file_uploader(
        "Questions (JSON lines: question, relevant)", type=["jsonl", "json"], key="eval_upload", max_upload_size=MAX_SET_MB
    )
    if up is None:
        return None
    return up.name, parse_labelled_set(up.getvalue().decode("utf-8", errors="replace"), up.name)


def metric_chart(rows: list[dict]):
    """Grouped bars: each metric at k for each retriever (eval's table rows)."""
    import altair as alt

    data = [
        {"retriever": r["retriever"], "metric": m, "value": v}
        for r in rows
        for m, v in r.items()
        if "@" in m and not m.startswith("p(") and isinstance(v, (int, float))
    ]
    return (
        alt.Chart(alt.Data(values=data))
        .mark_bar()
        .encode(
            x=alt.X("metric:N", title=None),
            xOffset="retriever:N",
            y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1])),
            color="retriever:N",
            tooltip=["retriever:N", "metric:N", "value:Q"],
        )
        .properties(height=320)
    )


EVAL_BATCH = 10  # questions per progress step; each step is also where Cancel takes effect


def _signature(name: str, records: list[dict], retrievers: list[str], k: int) -> tuple:
    """What a result was computed for: a result for anything else is stale and is not shown."""
    return name, tuple(r["question"] for r in records), tuple(retrievers), k


def _on_cancel() -> None:
    st.session_state["eval_cancelled"] = True


def _run(kb: KnowledgeBase, name: str, records: list[dict], retrievers: list[str], k: int) -> None:
    """eval.evaluate on records with one progress bar per retriever and a Cancel button.

    Cancel works through Streamlit: its click starts a new run of the page, which stops this one at
    the next progress update (within one batch of EVAL_BATCH questions); the new run says so.
    """
    from eval import evaluate  # the project's eval package, not the builtin

    cancel = st.empty()
    cancel.button("Cancel evaluation", icon=":material/cancel:", on_click=_on_cancel, key="eval_cancel")
    st.caption(f"Evaluating {len(retrievers)} retriever(s) on {len(records)} questions...")
    bars = {r: st.progress(0.0, text=f"{r}: waiting") for r in retrievers}

    def progress(label: str, done: int, total: int) -> None:
        bar = bars.get(label)
        if bar is not None:
            n = min(done * EVAL_BATCH, len(records)) if done else 0
            bar.progress(
                done / max(total, 1), text=f"{label}: {n} of {len(records)} questions" + (" (done)" if done == total else "")
            )

    rows = evaluate(
        kb,
        records,
        retrievers=retrievers,
        k=k,
        embedder=app_state.embedder(kb.dir),
        name=name,
        progress=progress,
        batch_size=EVAL_BATCH,
    )
    cancel.empty()
    st.session_state["eval_result"] = (_signature(name, records, retrievers, k), name, k, rows)


def _show_result(signature: tuple | None) -> None:
    result = st.session_state.get("eval_result")
    if not result:
        return
    if result[0] != signature:  # the set, retrievers or k changed since: the table would be for something else
        st.session_state.pop("eval_result")
        return
    _, name, k, rows = result
    st.subheader(md_escape(f"Results on {name} (k = {k})"))
    st.dataframe(rows, hide_index=True, key="eval_table")
    st.altair_chart(metric_chart(rows), width="stretch")
    st.caption(
        "Document-level metrics on clean questions; the p-value compares each retriever's recall with the "
        "first one's (paired randomisation test). `kb eval` runs garbled conditions and beta sweeps too."
    )


def _feedback_export(kb: KnowledgeBase) -> None:
    st.subheader("Feedback as a labelled set")
    records = feedback_questions(kb)
    rows = kb.feedback()
    st.caption(
        f"{len(rows)} feedback entries; {len(records)} questions with a confirmed source. "
        "A thumbs-up on an answer marks its cited documents as relevant; a later thumbs-down cancels it."
    )
    if records:
        st.dataframe(
            [{"question": r["question"], "relevant": ", ".join(r["relevant"])} for r in records],
            hide_index=True,
            key="feedback_table",
        )
    st.download_button(
        "Download feedback questions (JSONL)",
        data=feedback_jsonl(kb),
        file_name="feedback_questions.jsonl",
        mime="application/json",
        disabled=not records,
        on_click="ignore",
        icon=":material/download:",
    )


def render() -> None:
    st.title("Evaluation")
    path = app_state.kb_dir()
    try:
        kb = app_state.knowledge_base(path)
    except KBError as exc:
        st.warning(md_escape(app_state.message(exc)), icon=":material/warning:")
        return
    st.caption("Retrieval quality on a labelled question set: recall, MRR and nDCG per retriever.")
    chosen = None
    with app_state.shown_errors("Reading the labelled set"):
        chosen = _labelled_set(kb)
    retrievers = st.multiselect("Retrievers", RETRIEVERS, default=list(RETRIEVERS), key="eval_retrievers")
    k = st.slider("k (cut-off)", 1, 20, 5, key="eval_k")
    signature = _signature(chosen[0], chosen[1], retrievers, k) if chosen else None
    run = st.button(
        "Run evaluation",
        type="primary",
        disabled=chosen is None or not retrievers,
        icon=":material/play_arrow:",
        key="eval_run",
    )
    if st.session_state.pop("eval_cancelled", False) and not run:
        st.info("Evaluation cancelled; no results were kept.", icon=":material/cancel:")
    if run and chosen is not None:
        st.session_state.pop("eval_result", None)
        name, records = chosen
        with app_state.shown_errors("Evaluation"):
            _run(kb, name, records, retrievers, k)
    _show_result(signature)
    with app_state.shown_errors("Reading feedback"):
        _feedback_export(kb)
