"""Files that arrive by upload (app or HTTP API): checked names, types and sizes, saved under KB_DIR/uploads.

An upload's document key is its sanitised file name, so uploading a file with the name of a
document synced from a folder makes a new version of that document, never a second copy.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from ingest.loaders import SUPPORTED
from kb import KBError

MAX_UPLOAD_MB = 20
ALLOWED_EXTENSIONS = tuple(sorted(SUPPORTED))  # ".htm", ".html", ".markdown", ".md", ".pdf", ".txt"
UPLOAD_DIR = "uploads"
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MIME = {".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".pdf": "application/pdf", ".md": "text/markdown", ".markdown": "text/markdown", ".html": "text/html",
        ".htm": "text/html", ".txt": "text/plain"}


def safe_upload_name(name: str) -> str:
    """A file name safe to create in the uploads folder: no directories, no odd characters, an allowed type.

    Raises KBError naming the file and the reason when nothing usable is left or the type is not allowed.
    """
    base = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").split("/")[-1].strip()
    stem, dot, ext = base.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    stem = _UNSAFE.sub("_", stem)
    if ext not in ALLOWED_EXTENSIONS:
        raise KBError(f"{name!r}: file type {ext or '(none)'} is not allowed; upload one of "
                      f"{', '.join(ALLOWED_EXTENSIONS)}")
    stem = re.sub(r"_{2,}", "_", stem).strip(" ._")
    if not stem:
        raise KBError(f"{name!r}: the name has no usable characters; rename the file and upload it again")
    return stem[: MAX_NAME - len(ext)] + ext


def upload_dir(kb_dir: Path) -> Path:
    return Path(kb_dir).resolve() / UPLOAD_DIR


def save_upload(kb_dir: Path, name: str, data: bytes, max_mb: int = MAX_UPLOAD_MB) -> Path:
    """Write an uploaded file into KB_DIR/uploads under its sanitised name (replacing an older upload of that name)."""
    if len(data) > max_mb * 2**20:
        raise KBError(f"{name!r} is {len(data) / 2**20:.1f} MB, over the {max_mb} MB upload limit")
    if not data.strip():
        raise KBError(f"{name!r} is empty")
    folder = upload_dir(kb_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = (folder / safe_upload_name(name)).resolve()
    if dest.parent != folder:  # belt and braces: the sanitised name can never leave the folder
        raise KBError(f"{name!r}: refused, the name points outside the uploads folder")
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest
