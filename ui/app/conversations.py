"""The sidebar's conversation list: pick, start, rename, delete, export as Markdown.

Conversations are stored in the KB (kb/conversations.py) under this browser's session id (the
?s= URL parameter, see ui/app/session.py), so a reload finds them; untouched ones are deleted
after the retention (30 days by default).
"""

from __future__ import annotations

import streamlit as st

from kb import Conversation, ConversationStore, KBError
from ui.app import session as app_session
from ui.app import state as app_state
from ui.app.render import md_escape
from ui.app.turns import TurnView, conversation_markdown

NEW_TITLE = "New conversation"


def _label(c: Conversation) -> str:
    return f"{c.title} ({c.n_turns})"


def _on_pick(store: ConversationStore, by_label: dict[str, str]) -> None:
    picked = st.session_state.get("conv_pick")
    app_session.set_conversation(by_label.get(picked) if isinstance(picked, str) else None)


def _on_new() -> None:
    app_session.set_conversation(None)
    st.session_state.pop("conv_pick", None)


def _on_rename(store: ConversationStore, conv: str) -> None:
    try:
        store.rename(conv, st.session_state.get("conv_title", ""))
        st.session_state.pop("conv_pick", None)
    except KBError as exc:
        st.session_state["conv_error"] = app_state.message(exc)


def _on_delete(store: ConversationStore, conv: str) -> None:
    store.delete(conv)
    app_session.set_conversation(None)
    st.session_state.pop("conv_pick", None)
    st.toast("Conversation deleted.")


def _file_name(title: str) -> str:
    stem = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")
    return f"{'-'.join(filter(None, stem.split('-')))[:60] or 'conversation'}.md"


def render_conversations(box, store: ConversationStore | None, session: str, history: list[TurnView]) -> None:
    """In box: the session's conversations (newest first) and what can be done with the current one."""
    with box:
        st.markdown("**Conversations**")
        if store is None:
            st.caption("Conversations cannot be saved here (see the message on the page).")
            return
        convs = store.list(session)
        current = app_session.current_conversation()
        st.button(
            "New conversation",
            icon=":material/add_comment:",
            on_click=_on_new,
            key="conv_new",
            disabled=current is None,
            width="stretch",
        )
        if not convs:
            st.caption("Your conversations are saved in the knowledge base for 30 days and listed here.")
            return
        labels = {_label(c): c.id for c in convs}
        options = list(labels)
        cur = next((c for c in convs if c.id == current), None)
        st.session_state["conv_pick"] = _label(cur) if cur else None  # the widget follows the URL's conversation
        st.selectbox(
            "Saved conversations",
            options,
            key="conv_pick",
            placeholder=NEW_TITLE,
            on_change=_on_pick,
            args=(store, labels),
            label_visibility="collapsed",
        )
        if cur is None:
            return
        c1, c3 = st.columns(2)
        with c1.popover("Rename", icon=":material/edit:", help="Rename this conversation", width="stretch"):
            st.text_input("Title", value=cur.title, key="conv_title", max_chars=80)
            st.button("Rename", key="conv_rename", on_click=_on_rename, args=(store, cur.id), type="primary")
        st.download_button(
            "Export as Markdown",
            data=conversation_markdown(cur.title, history),
            file_name=_file_name(cur.title),
            mime="text/markdown",
            icon=":material/download:",
            on_click="ignore",
            key="conv_export",
            help="Export as Markdown (sources as footnotes)",
            width="stretch",
        )
        with c3.popover("Delete", icon=":material/delete:", help="Delete this conversation", width="stretch"):
            st.caption(md_escape(f"Delete “{cur.title}” and its {cur.n_turns} answers?"))
            st.button("Delete", key="conv_delete", on_click=_on_delete, args=(store, cur.id), type="primary")
        error = st.session_state.pop("conv_error", None)
        if error:
            st.error(md_escape(error), icon=":material/error:")
