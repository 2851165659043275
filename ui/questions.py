"""What a question typed into the chat may be: checked before it is shown or searched."""

from __future__ import annotations

MAX_QUESTION_CHARS = 2000


def question_problem(text: str | None) -> str | None:
    """None when text is a question to answer, else the message that tells the user what to change.

    A question needs at least one letter or digit and at most MAX_QUESTION_CHARS characters
    (after trimming); a longer text is nearly always a pasted document or ticket, which
    retrieval handles badly: the message asks for the question itself.
    """
    stripped = (text or "").strip()
    if not any(ch.isalnum() for ch in stripped):
        return (
            "The question is empty or only punctuation: type some words to search for, "
            "e.g. how long do customers have to ask for a refund?"
        )
    if len(stripped) > MAX_QUESTION_CHARS:
        return (
            f"The question is {len(stripped):,} characters long; the limit is {MAX_QUESTION_CHARS:,}. "
            "Ask the question itself in a sentence or two (paste the key sentence of a ticket, not the whole "
            "ticket)."
        )
    return None
