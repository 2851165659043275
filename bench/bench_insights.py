"""What `kb insights` costs over a full question log (issue 29's goal: < 30 s for 100,000 logged questions).

    python -m bench.bench_insights [--entries 100000] [--kb-dir KB] [--abstained 0.2] [--thumbs-down 0.03]

Copies a KB (--kb-dir; default: the sample documents ingested into a temporary one) and fills its question log
through kb.QuestionLog.record_many (each question redacted, retention pruned; batches of 5,000 in one
transaction each) with --entries questions spread over 90 days: --abstained of them not answered (about 60 topics
the KB lacks, each asked in several phrasings, some with typos, greetings or personal data), the rest the sample
questions, answered with a citation; --thumbs-down of the answered get a thumbs
down through KnowledgeBase.add_feedback. Each entry carries the vector its answering retriever made of the
question (retriever.log_answer keeps it; the setup embeds them, untimed), except with --no-log-vectors (a log
from before they were kept). Then times insights.build_insights over the 90 days twice: the first report
(embeds only the gap questions without a kept vector: those redaction changed, or all with --no-log-vectors,
and keeps them) and the next one (reuses every vector). Prints seconds in total and per stage (reading,
embedding, grouping, nearest passages, trend, health) and the sizes that drive them.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from data import SAMPLE_DOCS, SAMPLE_QUESTIONS
from insights import build_insights
from kb import KnowledgeBase, LoggedCitation, NewEntry, QuestionLog, QuestionLogConfig, embedder_for

DAY = 86400.0
MISSING = [  # what a support desk is asked that the sample KB does not cover
    "payroll for employees", "filing annual tax returns", "an Android mobile app", "a Shopify integration",
    "multi-currency bank feeds", "inventory tracking", "time tracking for projects", "purchase orders",
    "a German-language interface", "two-factor authentication with hardware keys", "SAML single sign-on",
    "an offline desktop version", "importing from QuickBooks", "custom invoice fonts", "recurring expense rules",
    "VAT MOSS returns", "payments in cryptocurrency", "a white-label portal for clients", "API rate limits",
    "webhooks for paid invoices", "a Zapier integration", "dark mode", "printing cheques", "payroll tax forms",
    "the data residency region", "HIPAA compliance", "accessibility of the customer portal", "a Slack bot",
    "budgets per department", "approval workflows for bills", "split payments across cards", "late fee rules",
    "gift cards", "point-of-sale hardware", "mileage tracking", "receipt scanning by e-mail", "a referral programme",
    "student discounts", "nonprofit pricing", "reseller accounts", "audit logs export", "custom user roles",
    "sandbox accounts for testing", "bulk invoice deletion", "a public status page", "SOC 2 reports",
    "merging duplicate customers", "a Xero migration", "payment links by SMS", "credit notes in bulk",
    "Apple Pay at checkout", "invoice templates in Spanish", "automatic bank reconciliation rules",
    "a Linux desktop app", "deleting my whole account", "changing the account owner", "an on-premise install",
    "usage-based billing", "quotes that expire", "customer statements by post",
]  # fmt: skip
PHRASINGS = [
    "Does Tallyo support {}?", "Can I use Tallyo for {}?", "How do I set up {} in Tallyo?", "is there {}",
    "Do you offer {}?", "Where can I find {}?", "What about {}?", "Any plans for {}?",
]  # fmt: skip
OPENERS = ["", "", "", "Hi, ", "Quick question: ", "Hello team, ", "Urgent: "]
PERSONAL = [
    "",
    "",
    "",
    "",
    "",
    " My email is jo.doe@example.com.",
    " Call me on +44 20 7946 0958.",
    " Card 4111 1111 1111 1111.",
]


def typo(text: str, rng: random.Random) -> str:
    """One dropped or swapped letter, as people type."""
    i = rng.randrange(1, max(2, len(text) - 2))
    return text[:i] + text[i + 1 :] if rng.random() < 0.5 else text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def gap_question(rng: random.Random) -> str:
    q = rng.choice(OPENERS) + rng.choice(PHRASINGS).format(rng.choice(MISSING)) + rng.choice(PERSONAL)
    return typo(q, rng) if rng.random() < 0.25 else q


def fill(
    kb: KnowledgeBase, entries: int, abstained: float, thumbs_down: float, now: float, log_vectors: bool, seed: int = 7
) -> dict:
    """Write the synthetic log (see the module's docstring); the counts written."""
    rng = random.Random(seed)
    questions = [json.loads(line)["question"] for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]
    chunks = [c for c in kb.chunks([int(i) for i in kb.snapshot().ids[:400]]) if c is not None]
    rows: list[NewEntry] = []
    answered: list[tuple[str, LoggedCitation]] = []
    for _ in range(entries):
        at = now - rng.uniform(0, 89.9) * DAY
        who = rng.choice(["key:a1", "key:b2", "key:c3", "session:s1", None])
        if rng.random() < abstained:
            rows.append(NewEntry(at, gap_question(rng), "abstained", (), who, None, rng.uniform(0.1, 0.47)))
        else:
            c = rng.choice(chunks)
            cite = LoggedCitation(c.id, c.doc_source, c.doc_version)
            q = rng.choice(OPENERS) + rng.choice(questions)
            rows.append(NewEntry(at, q, "answered", (cite,), who, None, rng.uniform(0.48, 0.9)))
            if rng.random() < thumbs_down:
                answered.append((q, cite))
    embed_s = 0.0
    if log_vectors:  # what log_answer keeps: the vector the answering retriever made of the question
        start = time.perf_counter()
        embedder = embedder_for(kb)
        distinct = sorted({r.question for r in rows})
        vectors = dict(zip(distinct, (v.astype("float32").tobytes() for v in embedder.encode_queries(distinct))))
        rows = [replace(r, vector=vectors[r.question], model=embedder.name) for r in rows]
        embed_s = time.perf_counter() - start
    log = QuestionLog(kb, QuestionLogConfig(retention_days=90))
    for start in range(0, len(rows), 5000):
        log.record_many(rows[start : start + 5000], now=now)
    for q, cite in answered:
        kb.add_feedback(q, cite.chunk_id, cite.doc_source, False, by="key:a1")
    return {"entries": len(log), "thumbs_down": len(answered), "setup_embedding_s": round(embed_s, 1)}


def timed_report(kb: KnowledgeBase, since: float) -> dict:
    start = time.perf_counter()
    report = build_insights(kb, since=since)
    total = time.perf_counter() - start
    return {
        "total_s": round(total, 2),
        **{f"{k}_s": v for k, v in report.seconds.items()},
        "asked": report.asked,
        "gap_questions": len(report.gaps),
        "distinct_gap_questions": len({g.question for g in report.gaps}),
        "topics": len(report.topics),
        "largest_topics": [t.size for t in report.topics[:5]],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--kb-dir", type=Path, default=None, help="A KB to copy (default: the sample documents, ingested)")
    ap.add_argument("--abstained", type=float, default=0.2)
    ap.add_argument("--thumbs-down", type=float, default=0.03)
    ap.add_argument(
        "--no-log-vectors",
        action="store_true",
        help="Log no question vectors (a log written before they were kept): the first report embeds every gap question",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = Path(tmp) / "kb"
        if args.kb_dir:
            shutil.copytree(args.kb_dir, kb_dir)
        else:
            from ingest import IngestConfig, ingest

            ingest(kb_dir, [SAMPLE_DOCS], IngestConfig())
        kb = KnowledgeBase(kb_dir)
        now = time.time()
        start = time.perf_counter()
        written = fill(kb, args.entries, args.abstained, args.thumbs_down, now, not args.no_log_vectors)
        setup = time.perf_counter() - start
        out = {**written, "fill_s": round(setup, 1)}
        out["first_report"] = timed_report(kb, now - 90 * DAY)
        out["next_report"] = timed_report(kb, now - 90 * DAY)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
