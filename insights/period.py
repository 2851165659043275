"""A report's period as people write it: a span back from now ("7d", "24h", "2w") or a UTC date ("2026-11-01").

One reading for `kb insights --since`, the API's ?since=&until= and the app's period picker.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

UNITS = {"h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
FORMS = "a span like 7d, 24h or 2w, or a date like 2026-11-01"
MAX_LENGTH = 40  # characters: nothing longer is a period


def parse_when(value: str, now: float | None = None) -> float:
    """value as Unix seconds: a span before now, or a date at 00:00 UTC; ValueError naming the accepted forms."""
    now = time.time() if now is None else now
    if len(value) <= MAX_LENGTH:
        m = re.fullmatch(r"\s*(\d{1,6}(?:\.\d+)?)\s*([hdw])\s*", value)
        if m:
            return now - float(m.group(1)) * UNITS[m.group(2)]
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    raise ValueError(f"{value[:MAX_LENGTH]!r}: give {FORMS}")
