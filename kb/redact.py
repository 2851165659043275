"""Personal data taken out of a question before it is stored (the question log, kb/question_log.py).

What is replaced, in this order, each by a bracketed label so the question still reads:
    [email]   e-mail addresses (name@domain.tld)
    [iban]    IBAN-like account numbers: two letters, two check digits, 11-30 more letters or digits
    [card]    card-like numbers: 13-19 digits (spaces or dashes allowed) that pass the Luhn check
    [id]      ID-like numbers: US social security style 123-45-6789
    [phone]   phone numbers: 9-15 digits in groups (+44 20 7946 0958, (555) 123-4567, 555-123-4567)
    [id]      any other run of 9 or more digits (spaces or dashes allowed): account, passport, member numbers
What is kept: dates (2024-03-15, 15.03.2024), prices ($1,299.99), section numbers (4.2), quantities, times,
and numbers of up to 8 digits (policy 12345678): a question is about them, and they name nobody.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<![\w.,])\d(?:[ -]?\d){12,18}(?![\w.,])")
SSN = re.compile(r"(?<![\w.,-])\d{3}-\d{2}-\d{4}(?![\w.,-])")
PHONE = re.compile(
    r"(?<![\w.,])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w,]|\.\d)"
    r"|(?<![\w.,])\+\d{9,15}(?!\w)"
)
DIGITS = re.compile(r"(?<![\w.,])\d(?:[ -]?\d){8,}(?![\w,]|\.\d)")


def luhn_ok(digits: str) -> bool:
    """The Luhn check of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _card(m: re.Match[str]) -> str:
    return "[card]" if luhn_ok(_digits(m.group(0))) else m.group(0)


def _phone(m: re.Match[str]) -> str:
    text = m.group(0)
    n = len(_digits(text))
    # Dates (2024-03-15, 15.03.2024) have 8 digits; a phone number has 9 to 15.
    return "[phone]" if 9 <= n <= 15 else text


def redact(text: str) -> str:
    """text with e-mail addresses, IBAN-like, card-like and ID-like numbers and phone numbers replaced by
    [email], [iban], [card], [id] and [phone]; everything else unchanged."""
    text = EMAIL.sub("[email]", text)
    text = IBAN.sub(lambda m: "[iban]" if sum(c.isdigit() for c in m.group(0)) >= 8 else m.group(0), text)
    text = CARD.sub(_card, text)
    text = SSN.sub("[id]", text)
    text = PHONE.sub(_phone, text)
    return DIGITS.sub("[id]", text)
