"""eval: retrieval quality on labelled question sets, clean and garbled, every retriever side by side.

Public surface:
    load_dataset(path, split) -> LabelledSet     BEIR folder, JSONL or CSV (see eval.datasets)
    load_beir, load_jsonl, load_csv, from_records, LabelledSet
    parse_condition, parse_conditions, garble, garble_queries, Condition, CONDITION_KINDS
    METRICS, score, significance, STAT_TESTS     ranx metrics and paired tests on ranked target lists
    EvalConfig, EvalReport, run_eval(labelled, kb, config, embedder, specs) -> EvalReport
    RetrieverSpec                                 one report row: label, retriever name, Hopfield config
    evaluate(kb, records, retrievers, k, embedder) -> table rows   the app's quick evaluation
    write_report(report, out_dir, command), markdown(report)          results.md/json, per_query.json, PNGs
    headline_metric(report)                        the one-line summary the CLI prints
    QueryVectorCache                              query embeddings cached on disk by (model, text)
    EvalError                                     bad labelled sets, conditions or options (a KBError)
    MissingExtra                                  ranx or matplotlib absent: names pip install 'hopfield-kb[eval]'
    run_conversations(path, kb_dir) -> ConversationReport   conversational sets: first turns and follow-ups apart
    load_conversations, conversations_markdown    (eval.conversations)
"""

from eval.cache import QueryVectorCache
from eval.datasets import LabelledSet, from_records, load_beir, load_csv, load_dataset, load_jsonl
from eval.errors import EvalError, MissingExtra
from eval.garble import KINDS as CONDITION_KINDS
from eval.garble import Condition, garble, garble_queries, parse_condition, parse_conditions
from eval.metrics import METRICS, STAT_TESTS, score, significance
from eval.report import headline_metric, markdown, write_report
from eval.runner import EvalConfig, EvalReport, RetrieverSpec, evaluate, run_eval

__all__ = [
    "QueryVectorCache",
    "LabelledSet",
    "from_records",
    "load_beir",
    "load_csv",
    "load_dataset",
    "load_jsonl",
    "EvalError",
    "MissingExtra",
    "CONDITION_KINDS",
    "Condition",
    "garble",
    "garble_queries",
    "parse_condition",
    "parse_conditions",
    "METRICS",
    "STAT_TESTS",
    "score",
    "significance",
    "headline_metric",
    "markdown",
    "write_report",
    "EvalConfig",
    "EvalReport",
    "RetrieverSpec",
    "evaluate",
    "run_eval",
    "ConversationReport",
    "load_conversations",
    "run_conversations",
    "conversations_markdown",
]


_CONVERSATIONS = {
    "ConversationReport": "ConversationReport",
    "load_conversations": "load_conversations",
    "run_conversations": "run_conversations",
    "conversations_markdown": "markdown",
}


def __getattr__(name: str):
    # eval.conversations also runs as `python -m eval.conversations`: importing it here eagerly would load
    # it twice (runpy warns), so its names resolve on first use.
    if name in _CONVERSATIONS:
        from eval import conversations

        return getattr(conversations, _CONVERSATIONS[name])
    raise AttributeError(f"module 'eval' has no attribute {name!r}")
