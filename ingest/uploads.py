"""Files that arrive by upload (app or HTTP API): checked names, types and sizes, saved under KB_DIR/uploads.

An upload's document key is its sanitised file name, so uploading a file with the name of a
document synced from a folder makes a new version of that document, never a second copy.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ingest.loaders import SUPPORTED
from kb import KBError

MAX_UPLOAD_MB = 20
ALLOWED_EXTENSIONS = tuple(sorted(SUPPORTED))  # every type a sync reads (ingest.loaders.SUPPORTED)
UPLOAD_DIR = "uploads"
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MIME = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pdf": "application/pdf",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".eml": "message/rfc822",
    ".msg": "application/vnd.ms-outlook",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def safe_upload_name(name: str) -> str:
    """A file name safe to create in the uploads folder: no directories, no odd characters, an allowed type.

    Raises KBError naming the file and the reason when nothing usable is left or the type is not allowed.
    """
    base = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").split("/")[-1].strip()
    stem, dot, ext = base.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    stem = _UNSAFE.sub("_", stem)
    if ext not in ALLOWED_EXTENSIONS:
        raise KBError(f"{name!r}: file type {ext or '(none)'} is not allowed; upload one of {', '.join(ALLOWED_EXTENSIONS)}")
    stem = re.sub(r"_{2,}", "_", stem).strip(" ._")
    if not stem:
        raise KBError(f"{name!r}: the name has no usable characters; rename the file and upload it again")
    return stem[: MAX_NAME - len(ext)] + ext


def upload_dir(kb_dir: Path) -> Path:
    return Path(kb_dir).resolve() / UPLOAD_DIR


def check_upload(kb_dir: Path, name: str, data: bytes, max_mb: int = MAX_UPLOAD_MB) -> Path:
    """Where an upload would be saved, after every check that needs no write: size, content, type, name.
    Raises KBError naming the file and the reason. Writes nothing."""
    if len(data) > max_mb * 2**20:
        raise KBError(f"{name!r} is {len(data) / 2**20:.1f} MB, over the {max_mb} MB upload limit")
    if not data.strip():
        raise KBError(f"{name!r} is empty")
    folder = upload_dir(kb_dir)
    dest = (folder / safe_upload_name(name)).resolve()
    if dest.parent != folder:  # belt and braces: the sanitised name can never leave the folder
        raise KBError(f"{name!r}: refused, the name points outside the uploads folder")
    return dest


def _write_private(folder: Path, stem: str, data: bytes) -> Path:
    """data in a new file of its own in folder (0600): two uploads of one name never share a temp file."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(tmp)


def save_upload(kb_dir: Path, name: str, data: bytes, max_mb: int = MAX_UPLOAD_MB) -> Path:
    """Write an uploaded file into KB_DIR/uploads under its sanitised name (replacing an older upload of that name)."""
    dest = check_upload(kb_dir, name, data, max_mb)
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(_write_private(dest.parent, dest.name, data), dest)
    return dest


@contextmanager
def staged_upload(kb_dir: Path, name: str, data: bytes, max_mb: int = MAX_UPLOAD_MB) -> Iterator[Path]:
    """save_upload whose replacement is undone if the block raises: the older original under uploads/ is put
    back (or the new file removed), so a refused or failed upload leaves the stored original as it was."""
    dest = check_upload(kb_dir, name, data, max_mb)
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    new = _write_private(dest.parent, dest.name, data)
    backup = None
    if dest.exists():
        backup = new.with_name(new.name.removesuffix(".part") + ".old")
        os.replace(dest, backup)
    os.replace(new, dest)
    try:
        yield dest
    except BaseException:
        if backup is not None:
            os.replace(backup, dest)
        else:
            dest.unlink(missing_ok=True)
        raise
    if backup is not None:
        backup.unlink(missing_ok=True)
