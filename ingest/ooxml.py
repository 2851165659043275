"""Office Open XML files (.xlsx, .pptx) are zip archives: checked before a parser inflates them.

A zip bomb (a few KB that inflate to gigabytes) fails here with its real size, before any XML is read.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ingest.parsed import LoadError

MAX_UNZIPPED_BYTES = 256 * 1024 * 1024  # what a 20 MB upload of real spreadsheets or slides never reaches


def checked_archive(path: Path, data: bytes, max_bytes: int = MAX_UNZIPPED_BYTES) -> io.BytesIO:
    """data as a file object once its archive is known to inflate to at most max_bytes; LoadError otherwise."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise LoadError(path, f"not a readable Office file (not a zip archive: {exc})") from exc
    if total > max_bytes:
        raise LoadError(
            path, f"decompresses to {total / 2**20:,.0f} MB (limit {max_bytes / 2**20:,.0f} MB): skipped as a zip bomb"
        )
    return io.BytesIO(data)
