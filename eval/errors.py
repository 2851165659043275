"""The error eval raises for bad labelled sets, conditions and options."""

from kb import KBError


class EvalError(KBError):
    """A labelled set, garbling condition or eval option that cannot be used; the message names the fix."""
