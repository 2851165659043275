"""Hostile and damaged inputs, generated (never committed as large files), with what each must lead to.

Each case writes its files into a folder that already holds two good documents (synced first),
then one command runs against the KB. The expectation says what must happen: the case's file
fails with a reason containing `reason` (or is synced: reason None), the run exits with `exit`,
`kb check` passes afterwards (after `kb check --repair` for damage at rest), and the good documents
are still searchable and identical. Used by tests/test_hostile.py and `python -m bench.hostile_tally`
(scale=1.0 gives the sizes of the adversarial report; the tests use smaller ones).
"""

from __future__ import annotations

import os
import random
import string
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

GOOD = {
    "refunds.md": "# Refunds\n\nAnnual plans can be refunded within 14 days of the first payment.\n",
    "hours.txt": "Support is open from 9 to 5 on weekdays; Business customers get phone support.\n",
}
GOOD_QUESTION = ("refund window for annual plans", "refunds.md")


@dataclass(frozen=True)
class Case:
    """name; make(folder, scale) writes the hostile files and returns the file whose outcome is judged;
    reason: a word the failure reason must hold (None: the file must be synced); exit: expected exit code."""

    name: str
    make: Callable[[Path, float], str]
    reason: str | None
    exit: int = 1


def _words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = [
        w
        for w in "policy invoice refund annual plan customer account payment support window days team "
        "business starter export backup data deletion retention owner admin member".split()
    ]
    return " ".join(rng.choice(vocab) for _ in range(n))


def pdf_bomb(folder: Path, scale: float) -> str:
    """Many pages sharing one huge content stream: tiny on disk, slow to extract page after page."""
    ops = b"BT /F1 12 Tf 72 720 Td (Refund policy text that repeats.) Tj ET\n" * int(1_000_000 * scale)
    stream = zlib.compress(ops, 9)
    pages = max(int(300 * scale), 20)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(f"{5 + i} 0 R".encode() for i in range(pages))
        + f"] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" /Filter /FlateDecode >>\nstream\n" + stream + b"\nendstream",
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
        for _ in range(pages)
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    (folder / "bomb.pdf").write_bytes(bytes(out))
    return "bomb.pdf"


def deep_html(folder: Path, scale: float) -> str:
    n = int(100_000 * scale)
    (folder / "deep.html").write_text("<html><body>" + "<div>" * n + "Deep." + "</div>" * n + "</body></html>")
    return "deep.html"


def nested_mime(folder: Path, scale: float) -> str:
    # 1,000 levels at every scale: the file stays ~100 KB, and fewer levels would parse fine.
    body = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for i in range(1000):
        b = f"b{i}".encode()
        body = b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n" + body
        body += b"\r\n--" + b + b"--\r\n"
    (folder / "nested.eml").write_bytes(b"From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + body)
    return "nested.eml"


def _zip_bomb(path: Path, member: str) -> None:
    """An Office archive whose one part inflates to 300 MB of zeros (~300 KB on disk), at every scale: the
    refusal is by the inflated size (ingest.ooxml, 256 MB), so a smaller bomb would be parsed."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open(member, "w", force_zip64=True) as part:
            zeros = b"\0" * 2**20
            for _ in range(300):
                part.write(zeros)


def xlsx_bomb(folder: Path, scale: float) -> str:
    _zip_bomb(folder / "bomb.xlsx", "xl/worksheets/sheet1.xml")
    return "bomb.xlsx"


def pptx_bomb(folder: Path, scale: float) -> str:
    _zip_bomb(folder / "bomb.pptx", "ppt/slides/slide1.xml")
    return "bomb.pptx"


def huge_heading(folder: Path, scale: float) -> str:
    (folder / "heading.md").write_text("# " + _words(int(200_000 * scale), 1) + "\n")
    return "heading.md"


def base64_line(folder: Path, scale: float) -> str:
    rng = random.Random(2)
    alphabet = string.ascii_letters + string.digits + "+/"
    (folder / "blob.txt").write_text("".join(rng.choice(alphabet) for _ in range(int(10_000_000 * scale))))
    return "blob.txt"


def bad_name(folder: Path, scale: float) -> str:
    path = os.path.join(os.fsencode(folder), b"bad\xff\xfename.md")
    with open(path, "wb") as fh:
        fh.write(b"# Badly named\n\nThis file's name is not UTF-8, yet it is a fine policy about invoices.\n")
    return "bad\\xff\\xfename.md"


def newline_name(folder: Path, scale: float) -> str:
    (folder / "two\nlines\x1b[31m.md").write_text("# Escapes\n\nA name with a newline and \x1b[2J an escape.\n")
    return "two\\nlines\\x1b[31m.md"


def link_out(folder: Path, scale: float) -> str:
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    return "passwd.txt"


def link_in(folder: Path, scale: float) -> str:
    (folder / "refunds-link.md").symlink_to(folder / "refunds.md")
    return "refunds-link.md"


def utf16_bom(folder: Path, scale: float) -> str:
    (folder / "utf16.txt").write_bytes("Rückerstattung innerhalb von 14 Tagen; 返金は14日以内。\n".encode("utf-16"))
    return "utf16.txt"


def utf16_no_nul(folder: Path, scale: float) -> str:
    (folder / "cjk16.txt").write_bytes(("返金ポリシー：年間プランは十四日以内に全額返金。" * 20).encode("utf-16-le"))
    return "cjk16.txt"


def undecodable(folder: Path, scale: float) -> str:
    (folder / "noise.txt").write_bytes(bytes(range(128, 256)) * 64)
    return "noise.txt"


def repetitive(folder: Path, scale: float) -> str:
    (folder / "same.txt").write_text("The same sentence again and again, page after page. " * 20_000)
    return "same.txt"


SYNC_CASES = [
    Case("PDF: pages share one huge content stream", pdf_bomb, "budget"),
    Case("HTML nested 100,000 levels", deep_html, "nested"),
    Case("e-mail with 1,000 nested MIME parts", nested_mime, "nested"),
    Case("XLSX zip bomb (inflates to 300 MB)", xlsx_bomb, "zip bomb"),
    Case("PPTX zip bomb (inflates to 300 MB)", pptx_bomb, "zip bomb"),
    Case("Markdown whose H1 is one huge line", huge_heading, None, exit=0),
    Case("one 10 MB line of base64", base64_line, "encoded"),
    Case("file name not valid UTF-8", bad_name, None, exit=0),
    Case("newline and ESC in a file name", newline_name, None, exit=0),
    Case("symlink to /etc/passwd", link_out, "not followed"),
    Case("symlink to a file inside the folder", link_in, None, exit=0),
    Case("UTF-16 with a byte-order mark", utf16_bom, None, exit=0),
    Case("UTF-16 without NUL bytes or mark", utf16_no_nul, None, exit=0),
    Case("bytes no encoding reads", undecodable, "encoding"),
    Case("90% of the chunks identical", repetitive, "repetitive"),
]


# ---- damage at rest: (name, what to do to the KB directory, words the check must report) -----------
def _snapshot_file(kb_dir: Path, prefix: str) -> Path:
    return next(kb_dir.glob(f"{prefix}-*"))


def flip_vector_bytes(kb_dir: Path) -> None:
    path = _snapshot_file(kb_dir, "vectors")
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 4000, len(data) - 3000):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def nan_vectors(kb_dir: Path) -> None:
    import numpy as np

    path = _snapshot_file(kb_dir, "vectors")
    vectors = np.load(path)
    vectors[0, :5] = np.nan
    np.save(path, vectors)


def damaged_header(kb_dir: Path) -> None:
    path = _snapshot_file(kb_dir, "vectors")
    data = bytearray(path.read_bytes())
    data[:20] = b"\x00" * 20
    path.write_bytes(bytes(data))


def truncated_vectors(kb_dir: Path) -> None:
    path = _snapshot_file(kb_dir, "vectors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def deleted_index(kb_dir: Path) -> None:
    _snapshot_file(kb_dir, "index").unlink()


DAMAGE_CASES = [
    ("bytes flipped in the vectors file", flip_vector_bytes),
    ("NaN written into the vectors file", nan_vectors),
    ("vectors file header damaged", damaged_header),
    ("vectors file truncated", truncated_vectors),
    ("FAISS index file deleted", deleted_index),
]
