"""The one JSON of hits, citations, answers and ingest reports (retriever/serialize.py, ingest/report_json.py): what
the API replies, what `kb ... --json` prints and what the app's turns are drawn from."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from api.schemas import RESPONSE_SHAPES, AnswerResponse, HitOut, SearchResponse, TopicOut, mirrors
from api.schemas import Citation as CitationOut
from ingest import FileFailure, IngestReport, report_dict, report_line
from insights import GapTopic
from kb import ChunkRecord
from retriever import (
    SCOPED_DIAGNOSTICS,
    Answer,
    Citation,
    CitationDict,
    Diagnostics,
    Hit,
    SearchResult,
    answer_dict,
    search_dict,
)
from retriever.results import HistoryUsed

TEXT = "Refunds are prorated. Annual plans may be cancelled within 30 days for a full refund."


def chunk(chunk_id: int = 7, url: str = "https://help.example.com/a/1") -> ChunkRecord:
    return ChunkRecord(
        id=chunk_id,
        doc_id=1,
        doc_source="policies/refunds.md",
        doc_name="refunds.md",
        doc_title="Refund policy",
        doc_version=2,
        ordinal=0,
        text=TEXT,
        char_start=100,
        char_end=100 + len(TEXT),
        n_tokens=20,
        page=None,
        section="Annual plans",
        doc_visibility="public",
        ocr_confidence=None,
        doc_url=url,
    )


def an_answer(abstained: bool = False) -> Answer:
    c = chunk()
    hits = (Hit(c, 0.8123456789, 1), Hit(chunk(8, url="javascript:alert(1)"), 0.5, 2))
    search = SearchResult(
        "can I cancel my annual plan?",
        "hopfield",
        hits,
        Diagnostics(
            beta=2.0,
            steps=3,
            converged=True,
            energy=(-1.0, -1.5, -1.6),
            entropy=0.4,
            candidates=40,
            repairs=(("anual", "annual"),),
            garble=0.1,
        ),
        seconds=0.01,
        snapshot="s1",
        history=HistoryUsed(
            turns=(("user", "refunds?"),), gate=1.5, views=(("refunds?", 0.5),), visited=1, visited_weight=0.2
        ),
    )
    start = TEXT.index("Annual")
    cite = Citation(
        1,
        c.id,
        c.doc_source,
        c.doc_name,
        c.doc_title,
        c.doc_version,
        c.page,
        c.section,
        c.char_start + start,
        c.char_start + len(TEXT),
        TEXT[start:],
        0.61234567,
        c,
    )
    return Answer(
        search.query,
        "Not found." if abstained else f"{TEXT[start:]} [1]",
        () if abstained else (cite,),
        abstained,
        0.71234567,
        0.48,
        search,
        closest=hits if abstained else (),
        notes=("a note",),
        seconds=0.0234567,
        signals={"evidence_score": 0.71234567},
    )


def test_an_answer_is_the_json_the_api_answer_model_describes_field_for_field():
    for abstained in (False, True):
        d = answer_dict(an_answer(abstained))
        assert set(d) == set(AnswerResponse.model_fields)
        assert AnswerResponse.model_validate(d).model_dump() == d
        for c in d["citations"]:
            assert set(c) == set(CitationOut.model_fields)
        for h in d["closest"]:
            assert set(h) == set(HitOut.model_fields)
    cited = answer_dict(an_answer())["citations"][0]
    assert (cited["document"], cited["name"], cited["version"], cited["quote"]) == (
        "policies/refunds.md",
        "refunds.md",
        2,
        TEXT[TEXT.index("Annual") :],
    )
    assert cited["end"] - cited["start"] == len(cited["quote"]) and cited["url"] == "https://help.example.com/a/1"
    closest = answer_dict(an_answer(abstained=True))["closest"]
    assert closest[1]["url"] == ""  # only http(s) addresses reach a client


def test_a_search_is_the_json_the_api_search_model_describes():
    d = search_dict(an_answer().search)
    assert set(d) == set(SearchResponse.model_fields) and SearchResponse.model_validate(d).model_dump() == d
    assert d["hits"][0]["score"] == 0.812346 and d["history_used"]["turns"] == [{"role": "user", "content": "refunds?"}]


def test_a_scoped_reader_gets_no_score_no_evidence_and_only_the_safe_diagnostics():
    ans = an_answer(abstained=True)
    d = answer_dict(ans, scoped=True)
    assert d["evidence"] is None and all(h["score"] is None for h in d["closest"])
    s = search_dict(ans.search, scoped=True)
    assert set(s["diagnostics"]) == set(SCOPED_DIAGNOSTICS) and all(h["score"] is None for h in s["hits"])


def test_the_command_line_details_add_to_the_api_json_and_never_reach_a_scoped_reader():
    ans = an_answer()
    plain, full = answer_dict(ans), answer_dict(ans, details=True)
    assert set(full) - set(plain) == {"mode", "retriever", "signals", "diagnostics"}
    assert {k: full[k] for k in plain if k != "citations"} == {k: v for k, v in plain.items() if k != "citations"}
    assert set(full["citations"][0]) - set(plain["citations"][0]) == {"score"}
    assert full["diagnostics"]["repairs"] == (("anual", "annual"),) and full["signals"] == {"evidence_score": 0.7123}
    assert set(search_dict(ans.search, details=True)) - set(search_dict(ans.search)) == {"seconds"}
    with pytest.raises(ValueError, match="every label"):
        answer_dict(ans, scoped=True, details=True)


def test_the_app_draws_each_source_from_the_same_citation_json():
    from ui.app.turns import TurnView, from_answer

    ans = an_answer()
    turn = from_answer(ans.question, ans, k=40)
    [s], [c] = turn.sources, answer_dict(ans)["citations"]
    assert (s.n, s.chunk_id, s.doc_source, s.doc_name, s.doc_title, s.doc_version, s.quote, s.start, s.end, s.url) == (
        c["n"],
        c["chunk_id"],
        c["document"],
        c["name"],
        c["title"],
        c["version"],
        c["quote"],
        c["start"],
        c["end"],
        c["url"],
    )
    assert s.passage == TEXT and s.passage[s.span[0] : s.span[1]] == s.quote
    assert TurnView.from_dict(turn.to_dict()) == turn  # saved conversations keep their field names
    gone = from_answer(ans.question, an_answer(abstained=True), k=40)
    assert [(s.n, s.chunk_id, s.passage, s.url) for s in gone.closest] == [
        (0, 7, TEXT, "https://help.example.com/a/1"),
        (0, 8, TEXT, ""),
    ]


def test_every_api_response_model_mirrors_its_shape_and_one_that_drifts_is_refused():
    for model, shape in RESPONSE_SHAPES:
        mirrors(model, shape)

    class Drifted(BaseModel):
        n: int
        doc_name: str

    with pytest.raises(TypeError, match="CitationDict"):
        mirrors(Drifted, CitationDict)
    # An insights dataclass: its fields, less what the JSON leaves out, plus what it adds (trend), all named.
    assert {"trend", "previous"} <= set(TopicOut.model_fields)

    class TopicWithoutTrend(BaseModel):
        id: int
        size: int

    with pytest.raises(TypeError, match=r"insights\.GapTopic differ: .*'trend'.*insights/report\.py"):
        mirrors(TopicWithoutTrend, GapTopic)


def test_an_ingest_report_is_one_json_for_every_interface_and_one_line_of_text(tmp_path):
    root = tmp_path / "docs"
    report = IngestReport(
        added=("a.md",),
        unchanged=("b.md",),
        failed=(
            FileFailure(str(root / "sub" / "c.pdf"), f"cannot read {root / 'sub' / 'c.pdf'}"),
            FileFailure("/elsewhere/d.pdf", "empty"),
        ),
        warnings=("w",),
        chunks_embedded=3,
        chunks_written=3,
        seconds=1.23456,
        stage_seconds=(("parse", 0.5),),
    )
    d = report_dict(report, root=root)
    assert d == {
        "counts": {"added": 1, "updated": 0, "unchanged": 1, "removed": 0, "failed": 2},
        "added": ["a.md"],
        "updated": [],
        "removed": [],
        "failed": [{"path": "sub/c.pdf", "reason": "cannot read docs/sub/c.pdf"}, {"path": "d.pdf", "reason": "empty"}],
        "chunks_embedded": 3,
        "chunks_reused": 0,
        "seconds": 1.235,
    }
    full = report_dict(report, details=True)
    assert full["failed"][0]["path"] == str(Path(root / "sub" / "c.pdf"))  # the owner's own paths stay
    assert set(full) - set(d) == {"unchanged", "warnings", "chunks_written", "stage_seconds", "dry_run"}
    assert full["stage_seconds"] == [["parse", 0.5]]
    assert report_line(report) == "1 added, 0 updated, 1 unchanged, 0 removed, 2 failed; 3 chunks embedded, 0 reused; 1.2 s"
