"""The Insights page's rows and charts (ui/app/insights_view.py) from a constructed report: no model, no browser."""

from __future__ import annotations

from insights import DocumentHealth, DocumentUse, GapTopic, Insights, NearPassage, PassageUse, StaleAnswer
from ui.app import insights_view as view

DAY = 86400.0


def report() -> Insights:
    near = NearPassage(7, "billing.md", "Billing FAQ", 2, 0.71, "Invoices are sent...")
    topics = (
        GapTopic(
            0,
            5,
            ("q",) * 5,
            ("How do I export invoices to Excel?", "excel export?"),
            (near,),
            "document billing.md comes close (0.71): update it",
            "billing.md",
            {"abstained": 5},
            (("2026-12-01", 2), ("2026-12-03", 3)),
            2,
        ),
        GapTopic(
            1, 1, ("payroll?",), ("payroll?",), (), "no document covers this: add one", None, {}, (("2026-12-02", 1),), 0
        ),
    )
    health = DocumentHealth(
        most_cited=(DocumentUse("billing.md", "Billing FAQ", 9, 1, 3),),
        least_cited=(DocumentUse("billing.md", "Billing FAQ", 9, 1, 3),),
        never_cited=("old.md",),
        most_thumbs_down=(DocumentUse("billing.md", "Billing FAQ", 9, 1, 3),),
        stale=(StaleAnswer("refund?", 3 * DAY, "key:1", "refunds.md", 1, None),),
        passages_thumbs_down=(PassageUse(7, "billing.md", 1, 3),),
    )
    return Insights(None, None, 40, 34, 6, 3, 0, topics, (), health)


def test_topic_rows_carry_size_trend_examples_nearest_passage_and_action():
    rows = view.topic_rows(report(), 10)
    assert [(r["topic"], r["questions"], r["trend"]) for r in rows] == [
        ("#1 How do I export invoices to Excel?", 5, "+3"),
        ("#2 payroll?", 1, "new"),
    ]
    assert rows[0]["nearest passage"] == "Billing FAQ (billing.md v2, 0.71)" and rows[1]["nearest passage"] == ""
    assert rows[0]["suggested action"].endswith("update it") and "excel export?" in rows[0]["examples"]
    assert view.topic_rows(report(), 1) == rows[:1]
    assert view.counts(report())["Not answered"] == 6


def test_chart_rows_are_topic_sizes_per_day_and_thumbs_down_per_document():
    days = view.topic_days(report(), 10)
    assert sum(d["questions"] for d in days) == 6 and {d["day"] for d in days} == {"2026-12-01", "2026-12-02", "2026-12-03"}
    assert view.thumbs_down_rows(report()) == [
        {"document": "billing.md", "title": "Billing FAQ", "thumbs down": 3, "rate": 0.75}
    ]
    spec = view.topic_chart(days).to_dict()
    assert spec["mark"]["type"] == "line" and len(spec["data"]["values"]) == len(days)
    assert view.thumbs_chart(view.thumbs_down_rows(report())).to_dict()["mark"]["type"] == "bar"


def test_health_tables_name_every_list_including_the_empty_ones():
    tables = view.health_tables(report())
    assert tables["Never cited"] == [{"document": "old.md"}]
    assert tables["Thumbs down by passage"] == [{"passage": 7, "document": "billing.md", "thumbs down": 3, "rate": 0.75}]
    assert tables["Answers from replaced versions"][0]["now"] == "removed"
    assert tables["Not updated for a year (exports)"] == []
