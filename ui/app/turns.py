"""A chat turn as plain data: what the page shows, what the KB stores, what the export and copy button write.

An Answer holds live objects (chunks, the search result); a saved conversation needs only what
the page draws, so each turn is turned into a TurnView once (from_answer) and stored as its
to_dict() JSON. A reload draws the same turn from that JSON, with the passages as they were when
answered (the document may have a newer version since; the label names the version quoted).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from kb import location_label
from retriever import Answer, Diagnostics, answer_dict


@dataclass(frozen=True)
class SourceView:
    """Source [n] (n = 0 for a closest passage of an abstention), as a saved turn keeps it.

    Built from retriever's citation JSON (SourceView.of); the field names are the stored conversations' own (doc_name,
    not name), so turns saved before still load.

    passage: the chunk's text; span: the quote's [start, end) inside passage (None: no quote);
    start/end: the quote's characters in the whole document's text.
    """

    n: int
    chunk_id: int
    doc_source: str
    doc_name: str
    doc_title: str
    doc_version: int
    page: int | None
    section: str | None
    passage: str
    quote: str = ""
    span: tuple[int, int] | None = None
    start: int = 0
    end: int = 0
    ocr_confidence: float | None = None  # 0-1 when the page was read by OCR
    url: str = ""  # an exported article's address

    @classmethod
    def of(cls, d: dict[str, Any], passage: str, span: tuple[int, int] | None = None) -> "SourceView":
        """A source drawn from retriever's JSON of a citation (retriever.citation_dict) or of a closest passage
        (retriever.hit_dict: n = 0, no quote): the fields the API sends, under the names saved turns keep."""
        return cls(
            n=d.get("n", 0),
            chunk_id=d["chunk_id"],
            doc_source=d["document"],
            doc_name=d["name"],
            doc_title=d["title"],
            doc_version=d["version"],
            page=d["page"],
            section=d["section"],
            passage=passage,
            quote=d.get("quote", ""),
            span=span,
            start=d.get("start", 0),
            end=d.get("end", 0),
            ocr_confidence=d["ocr_confidence"],
            url=d["url"],
        )


@dataclass(frozen=True)
class DiagnosticsView:
    """The Hopfield reader's state for one question, in the units the Advanced panel shows.

    k: first-stage pool per view (the K setting); candidates: passages the reader weighed, the
    union of the dense top-K and the lexical top-K (so between K and 2K); steps: Hopfield updates
    applied, step 1 being the first update from the question's evidence; energy[i]: the energy
    after update i + 1 (one value per step; non-finite values are None); entropy: of the final
    attention over the candidates, in nats (0 = all weight on one passage, ln(candidates) = uniform).
    memory: one line per passage the question memory suggested ("also suggested by 3 earlier questions like ...").
    """

    beta: float
    k: int
    candidates: int
    steps: int
    converged: bool
    entropy: float
    energy: tuple[float | None, ...]
    repairs: tuple[tuple[str, str], ...] = ()
    query_used: str = ""
    memory: tuple[str, ...] = ()

    @property
    def max_entropy(self) -> float:
        return math.log(self.candidates) if self.candidates > 1 else 0.0


@dataclass(frozen=True)
class TurnView:
    """One question and its answer (or the error message shown instead)."""

    question: str
    text: str = ""
    abstained: bool = False
    mode: str = "extractive"
    evidence: float = 0.0
    threshold: float = 0.0
    retriever: str = ""
    seconds: float = 0.0
    search_seconds: float = 0.0
    sources: tuple[SourceView, ...] = ()
    closest: tuple[SourceView, ...] = ()
    notes: tuple[str, ...] = ()
    diagnostics: DiagnosticsView | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TurnView":
        def source(s: dict) -> SourceView:
            span = s.get("span")
            return SourceView(**{**s, "span": tuple(span) if span is not None else None})

        diag = d.get("diagnostics")
        return cls(
            **{
                **d,
                "sources": tuple(source(s) for s in d.get("sources", ())),
                "closest": tuple(source(s) for s in d.get("closest", ())),
                "notes": tuple(d.get("notes", ())),
                "diagnostics": DiagnosticsView(
                    **{
                        **diag,
                        "energy": tuple(diag["energy"]),
                        "repairs": tuple(tuple(r) for r in diag.get("repairs", ())),
                        "memory": tuple(diag.get("memory", ())),
                    }
                )
                if diag
                else None,
            }
        )


def diagnostics_view(d: Diagnostics, k: int) -> DiagnosticsView:
    """The retriever's Diagnostics with non-finite energies replaced by None (a chart cannot place them)."""
    energy = tuple(float(e) if math.isfinite(e) else None for e in d.energy)
    return DiagnosticsView(
        beta=float(d.beta),
        k=int(k),
        candidates=int(d.candidates),
        steps=int(d.steps),
        converged=bool(d.converged),
        entropy=float(d.entropy),
        energy=energy,
        repairs=tuple((str(a), str(b)) for a, b in d.repairs),
        query_used=d.query_used,
        memory=tuple(memory_line(m) for m in d.memory),
    )


def memory_line(m) -> str:
    """'passage 12 (mass 0.83): also suggested by 3 earlier questions like "..."' for a MemorySuggestion."""
    like = "; ".join(f"\u201c{q}\u201d" for q in m.questions[:2])
    n = m.n_questions
    return (
        f"passage {m.chunk_id} (recalled {m.mass:.2f}): also suggested by {n} earlier question"
        f"{'s' if n != 1 else ''} like {like}"
    )


def from_answer(question: str, ans: Answer, k: int) -> TurnView:
    shown = answer_dict(ans)  # the JSON the API and `kb ask --json` send; the page adds each passage and quote span
    sources = tuple(SourceView.of(d, c.chunk.text, c.chunk_span) for d, c in zip(shown["citations"], ans.citations))
    closest = tuple(SourceView.of(d, d["text"]) for d in shown["closest"])
    diag = diagnostics_view(ans.search.diagnostics, k) if ans.search.diagnostics is not None else None
    used = ans.search.history
    extra = (
        {}
        if used is None
        else {READ_WITH: sum(role == "user" for role, _ in used.turns), "new_topic_detected": used.new_topic}
    )
    return TurnView(
        question=question,
        text=ans.text,
        abstained=ans.abstained,
        mode=ans.mode,
        evidence=ans.evidence,
        threshold=ans.threshold,
        retriever=ans.search.retriever,
        seconds=ans.seconds,
        search_seconds=ans.search.seconds,
        sources=sources,
        closest=closest,
        notes=tuple(ans.notes),
        diagnostics=diag,
        extra=extra,
    )


READ_WITH = "read_with"  # TurnView.extra: how many earlier questions the turn was read with
NEW_TOPIC = "new_topic"  # TurnView.extra flag: this turn starts a topic, so no earlier turn is read with it


def conversation_history(turns: list[TurnView]) -> list[dict[str, str]]:
    """The messages a new question follows: each answered turn since the last new topic, as a user message
    and the assistant's answer text ([{"role", "content"}], oldest first; turns that failed are left out)."""
    start = max((i for i, t in enumerate(turns) if t.extra.get(NEW_TOPIC)), default=0)
    out: list[dict[str, str]] = []
    for t in turns[start:]:
        if t.error is None:
            out += [{"role": "user", "content": t.question}, {"role": "assistant", "content": t.text}]
    return out


def source_line(s: SourceView) -> str:
    """ "Title — p. 2 · file.pdf v1" for the copy text and the export."""
    place = location_label(s.page, s.section, s.ocr_confidence)
    return f"{s.doc_title}" + (f" — {place}" if place else "") + f" · {s.doc_name} v{s.doc_version}"


def answer_text(turn: TurnView) -> str:
    """The answer as the page shows it: the quotes with their [n] markers (extractive), or the text."""
    if turn.mode == "extractive" and turn.sources and not turn.abstained:
        return " ".join(f"{' '.join(s.quote.split())} [{s.n}]" for s in turn.sources)
    return turn.text


def copy_text(turn: TurnView) -> str:
    """What the copy button puts on the clipboard: the answer, then its numbered sources."""
    lines = [answer_text(turn)]
    if turn.sources:
        lines += ["", "Sources:"] + [f"[{s.n}] {source_line(s)}" for s in turn.sources]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text for a Markdown body: characters Markdown would read as markup are escaped."""
    out = []
    for ch in " ".join(str(text).split()):
        out.append("\\" + ch if ch in "\\`*_[]<>#|" else ch)
    return "".join(out)


def conversation_markdown(title: str, turns: list[TurnView]) -> str:
    """The conversation as Markdown: each question, each answer with [^t-n] footnotes naming its sources."""
    out = [f"# {_md(title)}", ""]
    for i, turn in enumerate(turns, start=1):
        out += [f"## Question {i}", "", f"> {_md(turn.question)}", ""]
        if turn.error:
            out += [f"*{_md(turn.error)}*", ""]
            continue
        if turn.mode == "extractive" and turn.sources and not turn.abstained:
            body = " ".join(f"{_md(s.quote)}[^{i}-{s.n}]" for s in turn.sources)
        else:
            body = _md(turn.text)
            for s in turn.sources:
                body = body.replace(f"\\[{s.n}\\]", f"[^{i}-{s.n}]")
        out += [body, ""]
        for s in turn.sources:
            out.append(f"[^{i}-{s.n}]: {_md(source_line(s))}, characters {s.start}–{s.end}: “{_md(s.quote)}”")
        if turn.closest:
            out.append("Closest passages: " + "; ".join(_md(source_line(s)) for s in turn.closest))
        out.append("")
    return "\n".join(out).rstrip() + "\n"
