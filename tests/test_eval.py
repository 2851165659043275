"""eval without a KB: labelled-set readers and their errors, garbling, metrics against a hand computation."""

from __future__ import annotations

import json
import math
import random
import re
import string

import numpy as np
import pytest

from eval import (
    EvalConfig,
    EvalError,
    garble,
    garble_queries,
    load_dataset,
    parse_condition,
    parse_conditions,
    score,
    significance,
)
from eval.garble import NEIGHBOURS, typos
from eval.metrics import paired_randomisation
from eval.runner import retriever_specs
from eval.targets import to_targets
from ingest import TextRecord
from kb import KBError
from tests.helpers import write_beir

# ---- labelled sets ---------------------------------------------------------------------------


def test_beir_folder_reads_judged_queries_and_counts_bad_qrels_lines(tmp_path):
    corpus = [
        {"_id": "d1", "title": "Alpha", "text": "alpha text"},
        {"_id": "d2", "title": "", "text": "beta text"},
        {"_id": 3, "text": "gamma"},
    ]
    queries = [
        {"_id": "q1", "text": "about alpha"},
        {"_id": "q2", "text": "about beta"},
        {"_id": "q9", "text": "never judged"},
    ]
    folder = write_beir(
        tmp_path / "set", corpus, queries, ["q1\td1\t1", "q2\td2\t2", "q2\tnope\t1", "q2\t3", "qx\td1\t1", "q1\t3\t0"]
    )
    (folder / "corpus.jsonl").write_text((folder / "corpus.jsonl").read_text() + "{broken\n")
    ds = load_dataset(folder)
    assert ds.level == "doc" and list(ds.queries) == ["q1", "q2"]
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    # Exactly the records the lead's KB build uses, so an existing SciFact KB is reused as is.
    assert ds.corpus[0] == TextRecord(source="d1", title="Alpha", text="alpha text", name="d1")
    assert ds.corpus[2] == TextRecord(source="3", title="", text="gamma", name="3")
    text = " | ".join(ds.warnings)
    assert "corpus.jsonl: 1 malformed lines skipped (not JSON) (line 4)" in text
    assert "1 judgements skipped: document id not in corpus.jsonl (line 4: nope)" in text
    assert "1 malformed lines skipped (not 3 tab-separated columns) (line 5)" in text
    assert "1 judgements skipped: query id not in queries.jsonl (line 6: qx)" in text


def test_beir_query_left_without_relevant_documents_is_dropped_with_a_warning(tmp_path):
    folder = write_beir(
        tmp_path / "set",
        [{"_id": "d1", "text": "x"}],
        [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}],
        ["q1\td1\t1", "q2\tgone\t1"],
    )
    ds = load_dataset(folder)
    assert list(ds.queries) == ["q1"]
    assert any("queries dropped: no relevant document left (q2)" in w for w in ds.warnings)


def test_beir_errors_name_the_missing_file_split_and_duplicate_ids(tmp_path):
    folder = write_beir(
        tmp_path / "set",
        [{"_id": "d1", "text": "x"}],
        [{"_id": "q1", "text": "one"}, {"_id": "q1", "text": "again"}],
        ["q1\td1\t1"],
    )
    with pytest.raises(EvalError, match=r"lines 1 and 2 both have query _id 'q1'"):
        load_dataset(folder)
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "one"}) + "\n")
    with pytest.raises(EvalError, match=r"no qrels/dev.tsv \(splits here: test\)"):
        load_dataset(folder, split="dev")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(EvalError, match="corpus.jsonl is missing"):
        load_dataset(folder)


def test_jsonl_set_skips_bad_lines_with_counts_and_reads_levels(tmp_path):
    path = tmp_path / "set.jsonl"
    lines = [
        json.dumps({"id": "a", "question": "refund window?", "relevant": ["refund.md"]}),
        "{oops",
        json.dumps({"question": "no targets", "relevant": []}),
        json.dumps({"question": "", "relevant": ["x"]}),
        json.dumps({"question": "graded", "relevant": {"x.md": 2, "y.md": 1}}),
        "[1, 2]",
    ]
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(path)
    assert ds.level == "doc" and ds.corpus is None
    assert ds.queries == {"a": "refund window?", "q5": "graded"}
    assert ds.qrels == {"a": {"refund.md": 1}, "q5": {"x.md": 2, "y.md": 1}}
    text = " | ".join(ds.warnings)
    assert "set.jsonl: 1 malformed lines skipped (not JSON) (line 2)" in text
    assert "1 malformed lines skipped (not a JSON object) (line 6)" in text
    assert "1 records skipped: no relevant targets (line 3)" in text
    assert "1 records skipped: no question text (line 4)" in text

    chunks = tmp_path / "chunks.jsonl"
    chunks.write_text(
        json.dumps({"question": "q", "relevant": [12, 7]})
        + "\n"
        + json.dumps({"question": "r", "relevant_chunks": ["3"]})
        + "\n"
    )
    ds = load_dataset(chunks)
    assert ds.level == "chunk" and ds.qrels == {"q1": {"12": 1, "7": 1}, "q2": {"3": 1}}


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            [{"id": "x", "question": "a", "relevant": ["d"]}, {"id": "x", "question": "b", "relevant": ["e"]}],
            r"line 1 and line 2 both have id 'x'",
        ),
        (
            [{"question": "a", "relevant": ["d.md"]}, {"question": "b", "relevant": [5]}],
            r"line 2 gives chunk ids but line 1 gave document names",
        ),
        ([], r"holds no usable questions"),
        ([{"question": "a"}], r"holds no usable questions \(set.jsonl: 1 records skipped: relevant is not a list"),
    ],
)
def test_jsonl_set_errors_name_the_problem(tmp_path, lines, message):
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(EvalError, match=message):
        load_dataset(path)


def test_csv_set_splits_targets_on_semicolons_and_bars(tmp_path):
    path = tmp_path / "set.csv"
    path.write_text(
        'id,Question,relevant\nq1,"Refund, how?",refund.md; billing.html\nq2,Password reset,a.md|b.md\nq3,No target,\n'
    )
    ds = load_dataset(path)
    assert ds.queries == {"q1": "Refund, how?", "q2": "Password reset"}
    assert ds.qrels == {"q1": {"refund.md": 1, "billing.html": 1}, "q2": {"a.md": 1, "b.md": 1}}
    assert any("no relevant targets (line 4)" in w for w in ds.warnings)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,answer\nx,y\n")
    with pytest.raises(EvalError, match="must name a question column.*found text, answer"):
        load_dataset(bad)


def test_unknown_dataset_path_or_format_is_a_clear_error(tmp_path):
    with pytest.raises(EvalError, match="no labelled set at"):
        load_dataset(tmp_path / "missing.jsonl")
    odd = tmp_path / "set.xml"
    odd.write_text("<x/>")
    with pytest.raises(EvalError, match="unknown labelled-set format '.xml'"):
        load_dataset(odd)


# ---- garbling --------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


LONG = (
    "Annual plans cancelled after the fourteen day window receive a prorated refund for whole unused months, "
    "minus an early termination fee, unless the customer moved to a cheaper plan first."
)


def test_conditions_parse_by_name_and_unknown_names_say_what_is_valid():
    assert parse_condition("typo-10").kind == "typo" and parse_condition("typo-10").strength == 10
    assert parse_condition(" Truncate-50 ").name == "truncate-50"
    assert [c.name for c in parse_conditions("clean,typo-20,clean, lower-nopunct")] == ["clean", "typo-20", "lower-nopunct"]
    for bad in ("typo", "typo-0", "typo-101", "shuffle-10", "first-0"):
        with pytest.raises(EvalError, match="typo-N|percentage|at least one word"):
            parse_condition(bad)
    with pytest.raises(KBError):  # EvalError is a KBError: the CLI turns it into exit code 2
        parse_condition("nonsense")


def test_garbling_is_seeded_per_query_and_independent_of_other_queries():
    queries = {f"q{i}": f"{LONG} variant {i}" for i in range(20)}
    once = garble_queries(queries, "typo-20", seed=3)
    again = garble_queries(queries, "typo-20", seed=3)
    subset = garble_queries({"q7": queries["q7"], "q2": queries["q2"]}, "typo-20", seed=3)
    other_seed = garble_queries(queries, "typo-20", seed=4)
    assert once == again
    assert subset == {"q7": once["q7"], "q2": once["q2"]}
    assert sum(once[q] != other_seed[q] for q in queries) >= 18
    assert garble(LONG, "typo-10", seed=3, qid="a") != garble(LONG, "typo-20", seed=3, qid="a")
    assert garble(LONG, "clean", seed=3, qid="a") == LONG


def test_typo_strength_is_the_share_of_characters_edited():
    letters = sum(ch.isalnum() for ch in LONG)
    dist = {}
    for n in (5, 10, 20, 40):
        edits = round(letters * n / 100)
        ds = [levenshtein(LONG, garble(LONG, f"typo-{n}", seed=s, qid="q")) for s in range(10)]
        # Each typing error costs 1 edit (2 for a swap); neighbouring errors can merge or cancel.
        assert all(edits / 2 <= d <= 2 * edits for d in ds), (n, edits, ds)
        dist[n] = np.mean(ds)
    assert dist[5] < dist[10] < dist[20] < dist[40]
    assert garble("hi", "typo-1", seed=0, qid="x") != "hi"  # short queries still get one error


def test_typo_substitutions_are_keyboard_neighbours_and_keep_case():
    rng = random.Random(0)
    text = "Quick Brown Fox"
    out = typos(text, 100, rng, ops=("substitute",))
    assert len(out) == len(text)
    for a, b in zip(text, out):
        if a.isalpha():
            assert b.lower() in NEIGHBOURS[a.lower()] and a.isupper() == b.isupper()
        else:
            assert a == b


def test_word_conditions_drop_truncate_and_strip_punctuation():
    words = LONG.split()
    dropped = garble(LONG, "drop-30", seed=1, qid="q").split()
    assert len(dropped) == len(words) - round(len(words) * 0.3)
    it = iter(words)
    assert all(w in it for w in dropped)  # the survivors keep their order
    assert garble(LONG, "truncate-50").split() == words[: math.ceil(len(words) / 2)]
    assert garble(LONG, "first-3") == " ".join(words[:3])
    assert garble("one", "drop-100", seed=0, qid="q") == "one"
    flat = garble("Re-open the 'Billing' page: now!", "lower-nopunct")
    assert flat == "re open the billing page now"
    assert not re.search(f"[{re.escape(string.punctuation)}A-Z]", garble(LONG, "lower-nopunct"))


# ---- metrics ---------------------------------------------------------------------------------


def brute_force(qrels, run, k):
    """Recall, reciprocal rank, nDCG (linear gain, log2 discount) and hit at k, straight from the definitions."""
    out = {}
    for q, rel in qrels.items():
        top = run.get(q, [])[:k]
        found = [d for d in top if rel.get(d, 0) > 0]
        first = next((i for i, d in enumerate(top) if rel.get(d, 0) > 0), None)
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:k]))
        out[q] = {
            "recall": len(found) / sum(1 for g in rel.values() if g > 0),
            "rr": 0.0 if first is None else 1 / (first + 1),
            "ndcg": dcg / ideal,
            "hit": float(bool(found)),
        }
    return out


def test_metrics_match_a_hand_computation_on_a_random_toy_run():
    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(30)]
    qrels, run = {}, {}
    for qi in range(25):
        rel = rng.choice(docs, size=int(rng.integers(1, 4)), replace=False)
        qrels[f"q{qi}"] = {str(d): int(rng.integers(1, 3)) for d in rel}
        run[f"q{qi}"] = [str(d) for d in rng.permutation(docs)[: int(rng.integers(0, 25))]]
    run["q0"] = []  # a retriever that returned nothing
    del run["q1"]  # and a query missing from the run
    means, per_query = score(qrels, run, ["recall@5", "recall@20", "mrr@10", "ndcg@10", "hit_rate@10"])
    for k, metric in ((5, "recall@5"), (20, "recall@20")):
        ref = brute_force(qrels, run, k)
        assert means[metric] == pytest.approx(np.mean([ref[q]["recall"] for q in qrels]))
    ref = brute_force(qrels, run, 10)
    for q in qrels:
        assert per_query[q]["mrr@10"] == pytest.approx(ref[q]["rr"])
        assert per_query[q]["ndcg@10"] == pytest.approx(ref[q]["ndcg"])
        assert per_query[q]["hit_rate@10"] == pytest.approx(ref[q]["hit"])
    assert per_query["q0"]["recall@20"] == per_query["q1"]["ndcg@10"] == 0.0


def test_significance_separates_a_real_gain_from_a_relabelled_copy():
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(40)}
    weak = {q: [f"x{i}" for i in range(5)] + [next(iter(r))] for q, r in qrels.items()}
    strong = {q: [next(iter(r))] for q, r in qrels.items()}
    p = significance(qrels, ("weak", weak), [("strong", strong), ("same", dict(weak))], ["mrr@10", "recall@1"])
    assert p["strong"]["mrr@10"] < 0.01 and p["same"]["mrr@10"] > 0.5
    with pytest.raises(EvalError, match="unknown significance test"):
        significance(qrels, ("weak", weak), [("strong", strong)], ["mrr@10"], stat_test="bogus")


def test_paired_randomisation_is_repeatable_and_matches_the_exact_test_by_enumeration(rng):
    a = rng.random(12)
    b = a - 0.15 + rng.normal(0, 0.2, 12)
    # Exact two-sided test: every one of the 2^12 sign assignments of the paired differences.
    diff = a - b
    signs = np.array([[1 if (i >> j) & 1 else -1 for j in range(12)] for i in range(2**12)])
    exact = np.mean(np.abs(signs @ diff) >= abs(diff.sum()) - 1e-12)
    p1, p2 = paired_randomisation(a, b, seed=3), paired_randomisation(a, b, seed=3)
    assert p1 == p2
    assert p1 == pytest.approx(exact, abs=0.015)  # 10,000 resamples: Monte Carlo error ~0.005
    assert paired_randomisation(a, a) == 1.0


def test_significance_gives_the_same_p_values_on_every_run():
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(60)}
    one = {q: ([next(iter(r))] if i % 3 else ["x"]) for i, (q, r) in enumerate(qrels.items())}
    two = {q: ([next(iter(r))] if i % 4 else ["x"]) for i, (q, r) in enumerate(qrels.items())}
    runs = [significance(qrels, ("one", one), [("two", two)], ["recall@1", "mrr@10"], seed=0) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert 0.0 < runs[0]["two"]["recall@1"] < 1.0


def test_document_level_ranking_counts_each_document_once_at_its_best_chunk():
    doc_of = {1: "A", 2: "A", 3: "B", 4: "C", 5: "B"}
    assert to_targets([2, 1, 5, 3, 4], doc_of, cutoff=100) == ["A", "B", "C"]
    assert to_targets([2, 1, 5, 3, 4], doc_of, cutoff=2) == ["A", "B"]
    assert to_targets([4, 9, 2], None, cutoff=2) == ["4", "9"]


def test_eval_config_rejects_bad_options_and_labels_a_row_per_beta():
    assert [s.label for s in retriever_specs(["dense", "hopfield"], [4, 8.5])] == [
        "dense",
        "hopfield(beta=4)",
        "hopfield(beta=8.5)",
    ]
    assert [s.label for s in retriever_specs(["hopfield"], [])] == ["hopfield"]
    for kwargs, message in (
        ({"retrievers": ("dense", "colbert")}, "unknown retriever 'colbert'"),
        ({"conditions": ("typo-x",)}, "unknown condition"),
        ({"metrics": ("recall@ten",)}, "unknown metric"),
        ({"betas": (-1.0,)}, "beta must be"),
        ({"cutoff": 500}, "cutoff <= depth"),
    ):
        with pytest.raises(KBError, match=message):
            EvalConfig(**kwargs)
