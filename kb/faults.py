"""Fault injection for the crash tests: a named point where a writer can be made to die or stall.

Three environment variables, read at each point (unset, the normal case, costs one lookup):

    HOPFIELD_KB_FAULT=<point>[,<point>...]   the process SIGKILLs itself (kill -9: no cleanup,
                                             no finally blocks, no flush) when it reaches a point
    HOPFIELD_KB_PAUSE=<point>=<seconds>      the process sleeps there instead, holding whatever it
                                             holds (the write lock, an open transaction)
    HOPFIELD_KB_INTERRUPT=<point>            KeyboardInterrupt is raised there, as Ctrl+C would

Points, in the order a sync reaches them:

    locked                 the write lock is held, nothing written yet
    embedding              a batch of new vectors was saved to the embedding cache; more may follow
    snapshot-partial       the new snapshot is half on disk: its id file is in place, vectors and FAISS index are not
    snapshot-written       the new snapshot's three files are in place; the SQLite transaction is open, token not switched
    before-sqlite-commit   rows and the new token are written inside the open transaction, not committed
    after-sqlite-commit    committed; the old snapshot's files are not yet deleted

tests/test_faults.py kills `kb sync` at each of them and checks the KB after.
"""

from __future__ import annotations

import os
import signal
import time

FAULT_ENV = "HOPFIELD_KB_FAULT"
PAUSE_ENV = "HOPFIELD_KB_PAUSE"
INTERRUPT_ENV = "HOPFIELD_KB_INTERRUPT"
POINTS = ("locked", "embedding", "snapshot-partial", "snapshot-written", "before-sqlite-commit", "after-sqlite-commit")


def fault_point(name: str) -> None:
    """Die (SIGKILL), raise KeyboardInterrupt or sleep here when the environment asks; otherwise do nothing."""
    kill = os.environ.get(FAULT_ENV)
    if kill and name in kill.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(INTERRUPT_ENV) == name:
        raise KeyboardInterrupt
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        point, _, seconds = pause.partition("=")
        if point == name:
            time.sleep(float(seconds or 1))
