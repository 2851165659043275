"""The chat page: ask, read the cited answer, open each source at the quoted sentence, give feedback."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from kb import EmptyKBError, KBError
from retriever import Answer, answer
from ui import app_state
from ui.app_files import original_document, record_feedback
from ui.app_render import anchor_id, answer_html, citation_label, highlight_html, md_escape, passage_html, where


@dataclass(frozen=True)
class Turn:
    """One question and what came back: an Answer, or an error message for the page."""

    id: int
    question: str
    answer: Answer | None
    settings: app_state.Settings
    error: str | None = None


def _history() -> list[Turn]:
    return st.session_state.setdefault("chat_history", [])


def _download_buttons(doc_source: str, doc_name: str, page: int | None, key: str) -> None:
    files = original_document(app_state.knowledge_base(), doc_source, doc_name, page)
    if not files:
        st.caption("The original document is no longer available.")
        return
    cols = st.columns(len(files))
    for i, (col, f) in enumerate(zip(cols, files)):
        # data is a callable: the file is read when the button is clicked, not on every rerun
        col.download_button(f.label, data=f.data, file_name=f.file_name, mime=f.mime, key=f"{key}-dl{i}",
                            on_click="ignore", icon=":material/description:")


def _on_feedback(turn_id: int) -> None:
    turn = next((t for t in _history() if t.id == turn_id), None)
    value = st.session_state.get(f"fb_{turn_id}")
    if turn is None or turn.answer is None or value is None:
        return
    try:
        kb = app_state.knowledge_base()
        record_feedback(kb, turn.question, list(turn.answer.citations), helpful=value == 1)
        st.toast("Thanks, feedback saved." if value == 1 else "Thanks, noted as not helpful.")
    except KBError as exc:
        st.toast(md_escape(f"Could not save feedback: {exc}"))


def _render_answer(turn: Turn) -> None:
    ans = turn.answer
    assert ans is not None
    if ans.abstained:
        st.html(f'<div class="kb-answer kb-abstained" style="font-weight: 600;">{html.escape(ans.text)}</div>')
        st.caption(f"The evidence ({ans.evidence:.2f}) is below the threshold ({ans.threshold:.2f}); "
                   "these are the closest passages:")
        for h in ans.closest:
            c = h.chunk
            place = where(c.page, c.section)
            label = md_escape(f"{c.doc_title}" + (f" — {place}" if place else "") + f" · {c.doc_name} v{c.doc_version}")
            with st.expander(label):
                st.html(passage_html(c.text))
                _download_buttons(c.doc_source, c.doc_name, c.page, key=f"t{turn.id}-c{c.id}")
    else:
        st.html(answer_html(ans, turn.id))
        st.caption(f"{len(ans.citations)} source{'s' if len(ans.citations) != 1 else ''} · "
                   f"{ans.search.retriever} · {ans.mode} · {ans.seconds * 1000:.0f} ms")
        for c in ans.citations:
            st.html(f'<span id="{anchor_id(turn.id, c.n)}"></span>')
            with st.expander(citation_label(c)):
                a, b = c.chunk_span
                st.html(highlight_html(c.chunk.text, a, b))
                st.caption(md_escape(f"{c.doc_title} · {where(c.page, c.section) or 'whole document'} · chunk "
                                     f"{c.chunk_id} · characters {c.start}–{c.end} of the document · "
                                     f"version {c.doc_version}"))
                _download_buttons(c.doc_source, c.doc_name, c.page, key=f"t{turn.id}-n{c.n}")
    for note in ans.notes:
        st.info(md_escape(note), icon=":material/info:")
    st.feedback("thumbs", key=f"fb_{turn.id}", on_change=_on_feedback, args=(turn.id,))


def _render_turn(turn: Turn) -> None:
    with st.chat_message("user"):
        st.html(f'<div class="kb-question">{html.escape(turn.question)}</div>')
    with st.chat_message("assistant"):
        if turn.error:
            st.error(turn.error, icon=":material/error:")
        else:
            _render_answer(turn)


def _energy_chart(energy: tuple[float, ...]):
    """Energy per update step; the y axis hugs the values (the changes are small next to the level)."""
    import altair as alt

    data = [{"step": i, "energy": e} for i, e in enumerate(energy)]
    return (alt.Chart(alt.Data(values=data)).mark_line(point=True)
            .encode(x=alt.X("step:O", title="step"), y=alt.Y("energy:Q", scale=alt.Scale(zero=False), title="energy"))
            .properties(height=170))


def _diagnostics(box, turn: Turn | None) -> None:
    """The sidebar panel for the last question: timing, evidence, and the Hopfield reader's state."""
    with box:
        st.subheader("Last question")
        if turn is None or turn.answer is None:
            st.caption("Ask a question to see the reader's diagnostics.")
            return
        ans = turn.answer
        st.caption(f"{ans.search.retriever} · retrieval {ans.search.seconds * 1000:.0f} ms · "
                   f"answer {ans.seconds * 1000:.0f} ms")
        c1, c2 = st.columns(2)
        c1.metric("Evidence", f"{ans.evidence:.2f}")
        c2.metric("Threshold", f"{ans.threshold:.2f}")
        d = ans.search.diagnostics
        if d is None:
            st.caption(f"The {ans.search.retriever} retriever has no Hopfield diagnostics; choose hopfield to see them.")
            return
        c1, c2 = st.columns(2)
        c1.metric("Steps", d.steps)
        c2.metric("Converged", "yes" if d.converged else "no")
        c1.metric("Attention entropy", f"{d.entropy:.3f}")
        c2.metric("Candidates", d.candidates)
        st.caption(f"beta {d.beta:g}; entropy in nats (0 = one passage, ln K = uniform)")
        if d.energy:
            st.caption("Energy after each update (step 0 = the query)")
            st.altair_chart(_energy_chart(d.energy), width="stretch")


def _answer_turn(turn_id: int, question: str, settings: app_state.Settings, path: Path) -> Turn:
    try:
        with st.spinner("Searching the knowledge base..."):
            ans = answer(question, settings.retriever_for(path), settings.answer_config())
        return Turn(turn_id, question, ans, settings)
    except EmptyKBError:
        return Turn(turn_id, question, None, settings,
                    error="The knowledge base is empty: add documents on the Knowledge base page.")
    except KBError as exc:
        return Turn(turn_id, question, None, settings, error=md_escape(str(exc)))
    except Exception as exc:  # noqa: BLE001 - show a clear message, keep the session alive
        app_state.log.exception("answering %r failed", question)
        return Turn(turn_id, question, None, settings,
                    error=md_escape(f"Answering failed unexpectedly ({type(exc).__name__}: {exc}). "
                                    "The server log has the details."))


def render() -> None:
    settings = app_state.sidebar_settings()
    diag_box = st.sidebar.container()
    st.title("Ask the knowledge base")
    path = app_state.kb_dir()
    try:
        kb = app_state.knowledge_base(path)
        docs = kb.stats()["documents"]
    except KBError as exc:
        st.warning(f"{md_escape(str(exc))}. Add documents on the Knowledge base page.", icon=":material/warning:")
        return
    if not docs:
        st.info("The knowledge base is empty: add documents on the Knowledge base page.", icon=":material/info:")
    st.caption(md_escape(f"{docs} documents in {path}. Answers quote the documents; click a source to see the "
                         "passage."))
    question = st.chat_input("Ask a question, e.g. how long do customers have to ask for a refund?")
    history = _history()
    if docs:
        # Loads the model and builds the indexes on the first page view (cached per process after that).
        with app_state.shown_errors("Loading the retriever"), st.spinner("Loading the model and the index..."):
            settings.retriever_for(path)
    for turn in history:
        _render_turn(turn)
    if question:
        # The question shows at once; the answer fills in below it when ready.
        with st.chat_message("user"):
            st.html(f'<div class="kb-question">{html.escape(question)}</div>')
        with st.chat_message("assistant"):
            turn = _answer_turn(len(history), question, settings, path)
            history.append(turn)
            if turn.error:
                st.error(turn.error, icon=":material/error:")
            else:
                _render_answer(turn)
    _diagnostics(diag_box, history[-1] if history else None)
    if history and st.sidebar.button("Clear conversation", icon=":material/delete:"):
        history.clear()
        st.rerun()
