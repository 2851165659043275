"""Which browser session and which conversation this page view belongs to, kept in the URL.

Streamlit's session state dies on a reload, so the ids live in query parameters:
?s=<session id>&c=<conversation id>. Why the URL and not a cookie: Streamlit has no API to set a
cookie (it would take a JavaScript component and a second rerun to read it back), while
st.query_params is read on the first run of a reloaded page and survives page switches when we
write it back on every run. The cost: whoever has the URL has the conversation, like a shared link;
the ids are random (128 bits) so they cannot be guessed, and the app behind a sign-in stays behind it.
The ids are bearer tokens: never log them.

Binding: a URL is easy to plant (a link with someone else's ?s=&c= would save the victim's questions
into the sender's conversation). So when the browser holds Streamlit's XSRF cookie (set on every page
load while XSRF protection is on, the default), the session id is derived from that cookie's secret
and the URL's ?s= is ignored; a ?c= whose conversation belongs to another session is refused (see
ui/app/chat.py). Without the cookie (XSRF protection off, or a test harness) the URL is the binding.
"""

from __future__ import annotations

import hashlib
import re

import streamlit as st

from kb import new_id

SESSION_PARAM = "s"
CONVERSATION_PARAM = "c"
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _valid(value: object) -> str | None:
    return value if isinstance(value, str) and _ID.match(value) else None


XSRF_COOKIE = "_streamlit_xsrf"


def _xsrf_secret(value: str | None) -> bytes | None:
    """The token inside Streamlit's XSRF cookie ("2|mask|masked token|time", or the bare hex token of version 1)."""
    try:
        parts = (value or "").strip("\"'").split("|")
        if parts[0] == "2" and len(parts) == 4:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            token = bytes(a ^ b for a, b in zip(masked, mask * (len(masked) // max(len(mask), 1) + 1)))
        else:
            token = bytes.fromhex(parts[0])
    except (ValueError, IndexError):
        return None
    return token if len(token) >= 16 else None


def bound_session() -> str | None:
    """The session id this browser's XSRF cookie proves (a hash of its secret), or None without the cookie."""
    try:
        secret = _xsrf_secret(st.context.cookies.get(XSRF_COOKIE))
    except Exception:  # noqa: BLE001 - no request context (a test harness): no binding
        return None
    return "b" + hashlib.sha256(b"hopfield-kb session\0" + secret).hexdigest()[:40] if secret else None


def browser_session() -> str:
    """This browser's session id: bound to its cookie when it has one; else from the URL, else this Streamlit
    session's, else a new one (written to the URL)."""
    sid = (
        bound_session()
        or _valid(st.query_params.get(SESSION_PARAM))
        or _valid(st.session_state.get("kb_session"))
        or new_id()
    )
    st.session_state["kb_session"] = sid
    if st.query_params.get(SESSION_PARAM) != sid:
        st.query_params[SESSION_PARAM] = sid
    conv = _valid(st.query_params.get(CONVERSATION_PARAM)) or _valid(st.session_state.get("kb_conversation"))
    set_conversation(conv)
    return sid


def current_conversation() -> str | None:
    """The conversation id in the URL (None: a new conversation starts with the next question)."""
    return _valid(st.session_state.get("kb_conversation"))


def set_conversation(conversation_id: str | None) -> None:
    """Make conversation_id current (None: none, the next question starts one) in the session and the URL."""
    st.session_state["kb_conversation"] = conversation_id
    if conversation_id is None:
        if CONVERSATION_PARAM in st.query_params:
            del st.query_params[CONVERSATION_PARAM]
    elif st.query_params.get(CONVERSATION_PARAM) != conversation_id:
        st.query_params[CONVERSATION_PARAM] = conversation_id
