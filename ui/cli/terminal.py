"""Text that is safe to print on a terminal, one line per item.

File names may hold any bytes but / and NUL, and documents any characters: an ESC sequence in a
name or a passage must not reach the terminal raw (it can rewrite the screen or the title bar),
and a newline in a name must not split a line-oriented report into two lines.

    >>> safe_text("bad\\x1b[31mname\\n.md")
    'bad\\\\x1b[31mname\\\\n.md'
"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and the bidirectional overrides that can disguise a name.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe_text(text: object) -> str:
    """str(text) with every control or direction-override character written as an escape (\\n, \\x1b, \\u202e)."""
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), m.group().encode("unicode_escape").decode("ascii")), str(text))


def safe_block(text: object) -> str:
    """Like safe_text, but keeps line breaks (for multi-line passages shown as they are)."""
    return "\n".join(safe_text(line) for line in str(text).split("\n"))
