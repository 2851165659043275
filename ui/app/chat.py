"""The chat page: ask, read the cited answer, open each source at the quoted sentence, give feedback.

Agents see the conversation and the question box; the sidebar lists their saved conversations
(ui/app/conversations.py). Retrieval settings and diagnostics sit in the sidebar's Advanced section.
"""

from __future__ import annotations

import hashlib
import html
import threading
from pathlib import Path

import streamlit as st

from kb import ConversationStore, EmptyKBError, KBError, location_label
from retriever import answer, log_answer, record_feedback
from ui.app import session as app_session
from ui.app import state as app_state
from ui.app.cite import citation_script, copy_button
from ui.app.conversations import render_conversations
from ui.app.diagnostics import render_diagnostics
from ui.app.files import original_document, pdf_page_of
from ui.app.render import anchor_id, answer_html, citation_label, highlight_html, md_escape, passage_html
from ui.app.turns import NEW_TOPIC, READ_WITH, SourceView, TurnView, conversation_history, copy_text, from_answer
from ui.questions import question_problem

PDF_VIEW_HEIGHT_PX = 640


def _download_buttons(s: SourceView, key: str) -> None:
    if s.url.startswith(("https://", "http://")):  # an exported article: its live page in the help centre or wiki
        st.link_button("Open the live page", s.url, icon=":material/open_in_new:")
    files = original_document(app_state.knowledge_base(), s.doc_source, s.doc_name, s.page)
    if not files:
        st.caption("The original document is no longer available.")
        return
    cols = st.columns(len(files))
    for i, (col, f) in enumerate(zip(cols, files)):
        # data is a callable: the file is read when the button is clicked, not on every rerun
        col.download_button(
            f.label,
            data=f.data,
            file_name=f.file_name,
            mime=f.mime,
            key=f"{key}-dl{i}",
            on_click="ignore",
            icon=":material/description:",
        )


def _pdf_view(s: SourceView, key: str) -> None:
    """A toggle that shows the cited PDF page in the page (st.pdf), for sources with a page."""
    if s.page is None or not s.doc_name.lower().endswith(".pdf"):
        return
    if st.toggle(f"Show page {s.page} here", key=f"{key}-pdf"):
        data = pdf_page_of(app_state.knowledge_base(), s.doc_source, s.page)
        if data is None:
            st.caption("The original PDF is no longer available; the passage above is the stored text.")
        else:
            st.pdf(data, height=PDF_VIEW_HEIGHT_PX, key=f"{key}-pdfview")


def _feedback_key(conv: str | None, index: int) -> str:
    return f"fb_{conv}_{index}"


def _on_feedback(key: str, turn: TurnView) -> None:
    value = st.session_state.get(key)
    if value is None:
        return
    thanks = "Thanks, feedback saved." if value == 1 else "Thanks, noted as not helpful."
    _save_feedback(turn.question, list(turn.sources), value == 1, thanks)


def _on_answers_it(turn: TurnView, source: SourceView) -> None:
    """A closest passage confirmed as the answer: a thumbs up on it, which teaches the question memory, so the
    question and its paraphrases are answered from it from now on (AnswerConfig.memory_evidence)."""
    _save_feedback(
        turn.question, [source], True, "Saved: this question, and questions like it, will be answered from this passage."
    )


def _save_feedback(question: str, sources: list[SourceView], helpful: bool, thanks: str) -> None:
    """Record the verdict on sources (retriever.record_feedback) and say so in a toast: thanks, or why it failed."""
    try:
        record_feedback(app_state.knowledge_base(), question, sources, helpful=helpful)
        st.toast(thanks)
    except KBError as exc:
        st.toast(md_escape(f"Could not save feedback: {exc}"))


def _render_answer(turn: TurnView, index: int, conv: str | None) -> None:
    if turn.abstained:
        st.html(f'<div class="kb-answer kb-abstained" style="font-weight: 600;">{html.escape(turn.text)}</div>')
        st.caption(
            f"The evidence ({turn.evidence:.2f}) is below the threshold ({turn.threshold:.2f}); "
            "these are the closest passages:"
        )
        for j, s in enumerate(turn.closest):
            with st.expander(citation_label(s)):
                st.html(passage_html(s.passage))
                _download_buttons(s, key=f"t{index}-c{j}")
                st.button(
                    "This passage answers it",
                    key=f"t{index}-c{j}-answers-{conv}",
                    help="Teach the knowledge base: this question and ones like it are answered from this passage.",
                    on_click=_on_answers_it,
                    args=(turn, s),
                )
    else:
        st.html(answer_html(turn, index))
        st.caption(
            f"{len(turn.sources)} source{'s' if len(turn.sources) != 1 else ''} · "
            f"{turn.retriever} · {turn.mode} · {turn.seconds * 1000:.0f} ms" + _read_with(turn)
        )
        for s in turn.sources:
            anchor = anchor_id(index, s.n)
            with st.container(key=anchor), st.expander(citation_label(s)):
                a, b = s.span or (0, 0)
                st.html(highlight_html(s.passage, a, b, anchor=f"{anchor}-passage"))
                st.caption(
                    md_escape(
                        f"{s.doc_title} · {_where(s) or 'whole document'} · chunk {s.chunk_id} · "
                        f"characters {s.start}–{s.end} of the document · version {s.doc_version}"
                    )
                )
                _pdf_view(s, key=f"t{index}-n{s.n}")
                _download_buttons(s, key=f"t{index}-n{s.n}")
    for note in turn.notes:
        st.info(md_escape(note), icon=":material/info:")
    left, right = st.columns([1, 4], vertical_alignment="center")
    with left:
        copy_button(copy_text(turn))
    with right:
        key = _feedback_key(conv, index)
        st.feedback("thumbs", key=key, on_change=_on_feedback, args=(key, turn))


def _read_with(turn: TurnView) -> str:
    n = turn.extra.get(READ_WITH)
    if not n:
        return ""
    if turn.extra.get("new_topic_detected"):
        return " · read as a new topic"
    return f" · read with the {'question' if n == 1 else f'{n} questions'} before it"


def _where(s: SourceView) -> str:
    return location_label(s.page, s.section, s.ocr_confidence)


def _render_turn(turn: TurnView, index: int, conv: str | None) -> None:
    with st.chat_message("user"):
        st.html(f'<div class="kb-question">{html.escape(turn.question)}</div>')
    with st.chat_message("assistant"):
        if turn.error:
            st.error(turn.error, icon=":material/error:")
        else:
            _render_answer(turn, index, conv)


def _answer_turn(question: str, settings: app_state.Settings, path: Path, history: list[dict[str, str]]) -> TurnView:
    try:
        with st.spinner("Searching the knowledge base..."):
            retriever = settings.retriever_for(path)
            ans = answer(question, retriever, settings.answer_config(), history=history)
        # The session id opens the session's conversations: the log keeps only a digest of it.
        asker = hashlib.sha256(app_session.browser_session().encode()).hexdigest()[:16]
        # In a thread: a sync committing to the same kb.sqlite holds its write lock for seconds, and the
        # answer on screen must not wait on the log.
        kb = app_state.knowledge_base(path)
        kwargs = {"by": f"session:{asker}", "retriever": retriever}
        threading.Thread(target=log_answer, args=(kb, ans), kwargs=kwargs, daemon=True).start()
        return from_answer(question, ans, k=settings.candidates)
    except EmptyKBError:
        return TurnView(question, error="The knowledge base is empty: add documents on the Knowledge base page.")
    except KBError as exc:
        return TurnView(question, error=md_escape(app_state.message(exc)))
    except Exception as exc:  # noqa: BLE001 - show a clear message, keep the session alive
        app_state.log.exception("answering a question failed")
        return TurnView(
            question,
            error=md_escape(f"Answering failed unexpectedly ({type(exc).__name__}: {exc}). The server log has the details."),
        )


def _saved_turns(store: ConversationStore | None, conv: str | None) -> list[TurnView]:
    if store is None or conv is None:
        return []
    return [TurnView.from_dict(t.answer) for t in store.turns(conv)]


def _save(store: ConversationStore | None, session: str, turn: TurnView) -> None:
    """Append turn to the current conversation, starting one (titled by the question) when there is none."""
    if store is None:
        return
    conv = app_session.current_conversation()
    found = store.get(conv) if conv is not None else None
    if found is None or found.session != session:  # never write into another session's conversation
        found = store.create(session, title=turn.question)
        app_session.set_conversation(found.id)
    elif found.n_turns == 0 and found.title == "New conversation":
        store.rename(found.id, turn.question)
    store.add_turn(found.id, turn.question, turn.to_dict())


def render() -> None:
    conv_box = st.sidebar.container()
    advanced = st.sidebar.expander("Advanced: retrieval settings and diagnostics", icon=":material/tune:")
    settings = app_state.sidebar_settings(advanced)
    diag_box = advanced.container()
    st.title("Ask the knowledge base")
    path = app_state.kb_dir()
    try:
        kb = app_state.knowledge_base(path)
        docs = kb.stats()["documents"]
    except KBError as exc:
        st.warning(
            f"{md_escape(app_state.message(exc))}. Add documents on the Knowledge base page.", icon=":material/warning:"
        )
        return
    session = app_session.browser_session()
    store: ConversationStore | None = None
    with app_state.shown_errors("Opening the saved conversations"):
        store = app_state.conversations(path)
    if not docs:
        st.info("The knowledge base is empty: add documents on the Knowledge base page.", icon=":material/info:")
    st.caption(md_escape(f"{docs} documents. Answers quote the documents; click a marker such as [1] to open its source."))
    question = st.chat_input("Ask a question, e.g. how long do customers have to ask for a refund?")
    # Follow-ups are read with the turns before them; "New topic" makes the next question stand alone.
    if st.button(
        "New topic",
        icon=":material/restart_alt:",
        key="kb-new-topic",
        help="The next question is answered on its own, without the turns above it",
    ):
        st.session_state[NEW_TOPIC] = True
    if docs:
        # Loads the model and builds the indexes on the first page view (cached per process after that).
        with (
            app_state.shown_errors("Loading the retriever"),
            st.spinner("Loading the model and the knowledge base (first visit after a restart)..."),
        ):
            settings.retriever_for(path)
    conv = app_session.current_conversation()
    history: list[TurnView] = []
    with app_state.shown_errors("Reading the conversation"):
        found = store.get(conv) if store is not None and conv is not None else None
        if store is not None and conv is not None and (found is None or found.session != session):
            if found is not None:  # a link to another browser session's conversation: refused, never joined
                st.warning(
                    "That conversation belongs to another browser session; a new one starts here.", icon=":material/lock:"
                )
            app_session.set_conversation(None)  # deleted, expired, from another KB or another session: start afresh
            conv = None
        history = _saved_turns(store, conv)
    citation_script()
    for i, turn in enumerate(history):
        _render_turn(turn, i, conv)
    if question is not None:
        problem = question_problem(question)
        if problem:
            # No chat bubble: the text is not a question we will answer, so it is not echoed either.
            st.warning(problem, icon=":material/edit_note:")
        else:
            question = question.strip()
            with st.chat_message("user"):
                st.html(f'<div class="kb-question">{html.escape(question)}</div>')
            with st.chat_message("assistant"):
                fresh = bool(st.session_state.pop(NEW_TOPIC, False)) or not history
                turn = _answer_turn(question, settings, path, [] if fresh else conversation_history(history))
                if fresh:
                    turn.extra[NEW_TOPIC] = True
                with app_state.shown_errors("Saving the conversation"):
                    _save(store, session, turn)
                conv = app_session.current_conversation()
                if turn.error:
                    st.error(turn.error, icon=":material/error:")
                else:
                    _render_answer(turn, len(history), conv)
            history.append(turn)
    render_diagnostics(diag_box, history[-1] if history else None)
    render_conversations(conv_box, store, session, history)
