"""The error eval raises for bad labelled sets, conditions and options."""

from kb import KBError


class EvalError(KBError):
    """A labelled set, garbling condition or eval option that cannot be used; the message names the fix."""


class MissingExtra(EvalError, ImportError):
    """An optional dependency of the evaluation is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, use: str) -> None:
        super().__init__(f"{use} needs {module}, which a plain install leaves out: pip install 'hopfield-kb[eval]'")
