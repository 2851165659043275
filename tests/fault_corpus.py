"""A tiny corpus with numbered revisions, and the check that a KB holds exactly one revision.

Revision r of the folder: policy.md (three sections, so three chunks) and notes.txt each say
"revision code R<r>" in every chunk; notice-R<r>.txt exists only in revision r (so a sync from
r-1 to r adds one file, removes one, updates two); shipping.txt and warranty.html never change.
A KB is consistent with revision r when its documents and hashes are exactly revision r's, every
chunk of a revisioned document carries R<r>, and searches return hits of revision r only. A
half-applied sync would show up as two revision codes, a hash from one revision beside another's,
a chunk whose doc_version differs from its document's, or a FAISS id without a chunk row.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from kb import KnowledgeBase
from retriever import make_retriever

CODE = re.compile(r"revision code (R\d+)")
QUERY = "revision code of the travel policy and the notes"
STABLE = {
    "shipping.txt": "Shipping. Orders ship from the Leeds warehouse within two working days. "
    "Tracking numbers are emailed when the parcel leaves.\n",
    "warranty.html": "<html><head><title>Warranty</title></head><body><h1>Warranty</h1>"
    "<p>Hardware carries a two-year warranty against manufacturing defects.</p></body></html>",
}


def code(rev: int) -> str:
    return f"R{rev:03d}"


@dataclass(frozen=True)
class State:
    """What the KB must hold after a sync of revision rev: document key -> sha256 of the file bytes."""

    rev: int
    hashes: dict[str, str]


def write_revision(folder: Path, rev: int, extra_sections: int = 0) -> State:
    """Make folder hold revision rev (creating it if needed); returns the State a sync must reach."""
    folder.mkdir(parents=True, exist_ok=True)
    c = code(rev)
    sections = [
        ("Travel", "Economy class is booked for flights under six hours"),
        ("Expenses", "Meals are refunded up to the daily allowance with receipts"),
        ("Approvals", "Trips abroad need a manager's approval two weeks ahead"),
    ]
    sections += [(f"Annex {i}", f"Annex {i} lists the approved hotel chains for region {i}") for i in range(extra_sections)]
    body = "".join(f"## {title}\n\n{text}. This is revision code {c} of the travel policy.\n\n" for title, text in sections)
    files = {
        "policy.md": f"# Travel policy\n\n{body}",
        "notes.txt": f"Notes to the travel policy. The current text is revision code {c}; older notes are withdrawn.\n",
        f"notice-{c}.txt": f"Notice for revision code {c}: the travel policy was reissued.\n",
        **STABLE,
    }
    for old in folder.glob("notice-*.txt"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return State(rev, {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in files})


def assert_consistent(kb_dir: Path, allowed: list[State], embedder) -> State:
    """Assert the KB at kb_dir is whole and holds exactly one of the allowed revisions; return it."""
    kb = KnowledgeBase(kb_dir)
    report = kb.check()
    assert report.ok, report.problems
    hashes = kb.hashes()
    matches = [s for s in allowed if s.hashes == hashes]
    assert len(matches) == 1, f"KB documents match none of revisions {[s.rev for s in allowed]}: {sorted(hashes)}"
    state = matches[0]
    want = code(state.rev)
    versions = {d.id: d.version for d in kb.documents()}
    snap = kb.snapshot()
    records = kb.chunks(snap.ids)
    assert all(r is not None for r in records), "snapshot names chunk ids that have no row"
    revisioned = 0
    for rec in records:
        assert rec.doc_version == versions[rec.doc_id], (
            f"chunk {rec.id} cites v{rec.doc_version}, doc is v{versions[rec.doc_id]}"
        )
        found = CODE.findall(rec.text)
        assert set(found) <= {want}, f"chunk {rec.id} of {rec.doc_name} has {found} in a KB at {want}"
        revisioned += bool(found)
    assert revisioned >= 5, f"only {revisioned} chunks carry the revision code"  # 3 policy + notes + notice
    for name in ("dense", "bm25"):
        hits = make_retriever(name, kb, embedder=embedder, top_k=8, candidates=20).search(QUERY).hits
        codes = {c for h in hits for c in CODE.findall(h.chunk.text)}
        assert codes == {want}, f"{name} search in a KB at {want} returned revision codes {codes}"
        for h in hits:
            assert h.chunk.doc_version == versions[h.chunk.doc_id]
    return state


def snapshot_tokens(kb_dir: Path) -> set[str]:
    """Tokens that have snapshot files in kb_dir (one, once a writer has cleaned up)."""
    return {
        p.name.split(".", 1)[0].partition("-")[2]
        for p in Path(kb_dir).glob("*-*.*")
        if p.name.split("-", 1)[0] in ("ids", "vectors", "index")
    }
