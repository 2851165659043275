"""The app's sign-in: a memory-hard password hash, attempts limited per address with a lockout, sessions that expire.

`kb ui` hands the app only "scrypt$n$r$p$salt$hash" of the password (hashlib.scrypt, 16 MB and
~70 ms a try here: a stolen token costs an attacker the same per guess). Wrong attempts are counted
per client address (st.context.ip_address, or one shared bucket when it is unknown): five in 15
minutes lock that address out until the window has passed, and the whole app takes at most 30
attempts a minute, however many addresses try. A sign-in lasts SESSION_HOURS, then the form returns.
"""

from __future__ import annotations

import math
import time

import streamlit as st
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ui.launch import password_matches

SESSION_HOURS = 12.0
PER_ADDRESS = parse("5/15 minutes")
OVERALL = parse("30/minute")


@st.cache_resource(show_spinner=False)
def _limiter() -> MovingWindowRateLimiter:
    """One per server process: every browser session's attempts count together."""
    return MovingWindowRateLimiter(MemoryStorage())


def _address() -> str:
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no request context
        return "unknown"
    return address if isinstance(address, str) and address else "unknown"  # a test harness has a stand-in object


def locked_for(address: str) -> int:
    """Seconds until address may try again (0: it may now)."""
    limiter = _limiter()
    waits = [
        limiter.get_window_stats(limit, *ids).reset_time - time.time()
        for limit, ids in ((PER_ADDRESS, ("sign-in", address)), (OVERALL, ("sign-in", "*")))
        if not limiter.test(limit, *ids)
    ]
    return max(1, math.ceil(max(waits))) if waits else 0


def _count_failure(address: str) -> None:
    limiter = _limiter()
    limiter.hit(PER_ADDRESS, "sign-in", address)
    limiter.hit(OVERALL, "sign-in", "*")


def signed_in(token: str | None) -> bool:
    """True when no sign-in is set or this session signed in less than SESSION_HOURS ago; otherwise shows the
    sign-in form (or the lockout) and returns False."""
    if not token:
        return True
    since = st.session_state.get("signed_in_at")
    if isinstance(since, float) and time.time() - since < SESSION_HOURS * 3600:
        return True
    st.session_state.pop("signed_in_at", None)
    st.title("Sign in")
    address = _address()
    with st.form("sign_in"):
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        wait = locked_for(address)
        if wait:
            st.error(f"Too many wrong passwords; try again in {math.ceil(wait / 60)} minute(s).", icon=":material/lock:")
            return False
        if password_matches(token, password):
            st.session_state["signed_in_at"] = time.time()
            st.rerun()
        _count_failure(address)
        st.error("Wrong password.", icon=":material/lock:")
    return False
