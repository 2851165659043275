"""One evaluation run: every retriever under every condition on one labelled set, against one KB.

Steps: ingest the set's corpus when it has one (BEIR; an unchanged corpus is reused, nothing
re-embedded), map the set's targets onto the KB (document sources or chunk ids), then for
each condition garble the queries, embed them once (cached on disk), rank with every
retriever, score with ranx, and test each retriever against the first one (the baseline).

Document-level sets: each retriever ranks `depth` chunks, each document counts once at the
rank of its best chunk, and the first `cutoff` documents are scored.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from eval.cache import QueryVectorCache
from eval.datasets import LabelledSet, Tally
from eval.errors import EvalError
from eval.garble import garble_queries, parse_conditions
from eval.metrics import METRICS, STAT_TESTS, check_metrics, score, significance
from eval.targets import chunk_documents, prepare_kb, resolve_qrels, to_targets
from kb import DEFAULT_MODEL, EmbedderConfig, KnowledgeBase, TextEmbedder, kb_model, load_embedder
from retriever import DEFAULT_CANDIDATES, RETRIEVERS, HopfieldConfig, Retriever, make_retriever

# progress(retriever label, batches done, batches in all), called as each batch of questions is ranked.
Progress = Callable[[str, int, int], None]

TOP_SHOWN = 10  # targets kept per query in the per-query output


@dataclass(frozen=True)
class EvalConfig:
    """What to run.

    retrievers: names from retriever.RETRIEVERS, the first is the baseline of the significance
    tests. betas: Hopfield inverse temperatures, one row each (empty: HopfieldConfig's default).
    conditions: garbling condition names (see eval.garble). seed: garbling seed.
    limit: evaluate only the first N questions. depth: chunks ranked per query (document level);
    cutoff: targets scored per query. candidates: first-stage pool K of hybrid and Hopfield.
    stat_test: "fisher" (randomisation), "student" (paired t) or "tukey".
    cache_dir: where query embeddings are cached (None: not on disk).
    history: a labelled set (a JSONL path, or a LabelledSet) replayed as confirmed pairs into a scratch question
    memory before scoring; each Hopfield row gets a "+memory" twin and replayed questions are not scored (eval.history).
    model: the embedding model (kb.PACKAGED_MODELS) of a KB the run builds; an existing KB built with another
    is refused (None: the KB's own, or the default for a new one).
    """

    retrievers: tuple[str, ...] = ("dense", "bm25", "hybrid", "hopfield")
    betas: tuple[float, ...] = ()
    conditions: tuple[str, ...] = ("clean",)
    metrics: tuple[str, ...] = METRICS
    seed: int = 0
    limit: int | None = None
    depth: int = 300
    cutoff: int = 100
    candidates: int = DEFAULT_CANDIDATES
    stat_test: str = "fisher"
    batch_size: int = 64
    cache_dir: Path | None = None
    progress: bool = False
    history: Path | LabelledSet | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if not self.retrievers:
            raise EvalError("no retrievers given; e.g. --retrievers dense,bm25")
        unknown = [r for r in self.retrievers if r not in RETRIEVERS]
        if unknown:
            raise EvalError(f"unknown retriever {unknown[0]!r}; choose from {', '.join(RETRIEVERS)}")
        if len(set(self.retrievers)) != len(self.retrievers):
            raise EvalError("a retriever is named twice in --retrievers")
        for b in self.betas:
            HopfieldConfig(beta=b)  # raises KBError naming the valid range
        parse_conditions(list(self.conditions))
        check_metrics(self.metrics)
        if self.stat_test not in STAT_TESTS:
            raise EvalError(f"unknown significance test {self.stat_test!r}; choose one of {', '.join(STAT_TESTS)}")
        if self.cutoff < 1 or self.depth < self.cutoff:
            raise EvalError(f"need 1 <= cutoff <= depth, not cutoff {self.cutoff}, depth {self.depth}")
        if self.candidates < 1 or self.batch_size < 1:
            raise EvalError("candidates and batch_size must be at least 1")


@dataclass(frozen=True)
class RetrieverSpec:
    """One row of the report: a label, a retriever name and (Hopfield) its config."""

    label: str
    name: str
    hopfield: HopfieldConfig | None = None
    memory: Any = None  # a kb.question_memory.QuestionMemory the Hopfield row reads (None: no question memory)


def retriever_specs(retrievers: Sequence[str], betas: Sequence[float]) -> list[RetrieverSpec]:
    """Rows in the order given; "hopfield" becomes one row per beta, labelled hopfield(beta=B)."""
    out = []
    for name in retrievers:
        if name == "hopfield" and betas:
            out += [RetrieverSpec(f"hopfield(beta={b:g})", name, HopfieldConfig(beta=float(b))) for b in betas]
        else:
            out.append(RetrieverSpec(name, name, HopfieldConfig() if name == "hopfield" else None))
    return out


@dataclass(frozen=True)
class EvalReport:
    """Results of a run. Nested dicts are keyed condition -> retriever label -> ...

    results: mean of each metric. per_query: {query id: {metric: value}}. top: the first
    TOP_SHOWN targets each retriever returned per query. queries: the (garbled) query texts.
    pvalues: paired p-values against the baseline (first) retriever, per metric (baseline absent).
    ms_per_query: ranking time per query, query embedding excluded (it is shared and cached).
    ranked: mean number of targets returned per query (at most cutoff).
    betas: the Hopfield rows' beta. meta: dataset, KB, model, settings, timings, ingest summary.
    """

    dataset: str
    level: str
    n_queries: int
    conditions: tuple[str, ...]
    retrievers: tuple[str, ...]
    metrics: tuple[str, ...]
    results: dict[str, dict[str, dict[str, float]]]
    per_query: dict[str, dict[str, dict[str, dict[str, float]]]]
    top: dict[str, dict[str, dict[str, list[str]]]]
    queries: dict[str, dict[str, str]]
    qrels: dict[str, dict[str, int]]
    pvalues: dict[str, dict[str, dict[str, float]]]
    ms_per_query: dict[str, dict[str, float]]
    ranked: dict[str, dict[str, float]]
    betas: dict[str, float]
    warnings: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def baseline(self) -> str:
        return self.retrievers[0]

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{condition: {retriever: {metric: mean}}}: what `kb eval --json` prints."""
        return self.results

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _default_embedder(kb_dir: Path, model: str | None) -> TextEmbedder:
    """The embedder of the KB's model; model (if given) must be it, or builds a new KB."""
    built = kb_model(kb_dir)
    if model and built and model != built:
        raise EvalError(
            f"the KB at {kb_dir} was built with {built!r}, not {model!r}: give this run its own --kb-dir "
            f"(or move that KB with `kb reembed --model {model} --kb-dir {kb_dir}`)"
        )
    return load_embedder(EmbedderConfig(model=model or built or DEFAULT_MODEL))


def run_eval(
    labelled: LabelledSet,
    kb: KnowledgeBase | str | Path,
    config: EvalConfig = EvalConfig(),
    embedder: TextEmbedder | None = None,
    specs: Sequence[RetrieverSpec] | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Evaluate config.retrievers under config.conditions on labelled, against kb (a KB or its directory).

    A set with a corpus (BEIR) is first ingested into the KB directory. specs: report rows to run
    instead of config.retrievers and config.betas (e.g. Hopfield variants for an ablation; the
    first is the baseline). Raises EvalError (a KBError) for unusable input; skipped items are
    counted in the report's warnings. progress: told (label, done, total) before and after each batch of
    questions a retriever ranks (per condition); an exception it raises stops the run. Results do not
    depend on it.
    """
    started = time.perf_counter()
    kb_dir = kb.dir if isinstance(kb, KnowledgeBase) else Path(kb)
    if embedder is not None and config.model and embedder.name != config.model:
        raise EvalError(f"the embedder given is {embedder.name!r} but config.model is {config.model!r}")
    embedder = embedder or _default_embedder(kb_dir, config.model)
    ingest_report = prepare_kb(labelled, kb_dir, embedder, config.progress)
    kb = kb if isinstance(kb, KnowledgeBase) else KnowledgeBase(kb_dir)
    warnings = list(labelled.warnings)
    if ingest_report is not None and ingest_report.failed:
        tally = Tally(f"ingesting {labelled.name}")
        for f in ingest_report.failed:
            tally.add(f"corpus documents not ingested: {f.reason}", f.path)
        warnings += tally.messages()

    qrels, more = resolve_qrels(labelled, kb)
    warnings += more
    order = [q for q in labelled.queries if q in qrels]
    replay = None
    if config.history is not None:
        from eval.history import replay_history

        replay = replay_history(config.history, kb, embedder, config.cache_dir)
        order = [q for q in order if not replay.holds(labelled.queries[q])]
        warnings += replay.warnings
    if config.limit is not None:
        if config.limit < 1:
            raise EvalError(f"--limit must be at least 1, not {config.limit}")
        order = order[: config.limit]
    qrels = {q: qrels[q] for q in order}
    clean = {q: labelled.queries[q] for q in order}
    doc_of = chunk_documents(kb) if labelled.level == "doc" else None
    depth = config.depth if doc_of is not None else config.cutoff

    specs = list(specs) if specs else retriever_specs(config.retrievers, config.betas)
    specs = replay.with_memory(specs) if replay is not None else specs
    retrievers: dict[str, Retriever] = {
        s.label: make_retriever(
            s.name,
            kb,
            embedder=embedder,
            top_k=min(10, config.candidates),
            candidates=config.candidates,
            hopfield=s.hopfield,
            memory=s.memory,
        )
        for s in specs
    }
    conditions = parse_conditions(list(config.conditions))
    cache = QueryVectorCache(config.cache_dir, embedder)
    any_dense = any(r.uses_dense for r in retrievers.values())

    # Build each retriever's indexes (BM25, character n-grams, vocabulary) before the clock
    # starts, so ms/query measures ranking rather than one-off set-up.
    warmup: dict[str, float] = {}
    first = [next(iter(clean.values()))]
    first_vec = cache.vectors(first) if any_dense else None
    for label, retriever in retrievers.items():
        t0 = time.perf_counter()
        retriever.rank(first, k=depth, query_vectors=first_vec if retriever.uses_dense else None)
        warmup[label] = round(time.perf_counter() - t0, 3)

    results: dict = {}
    per_query: dict = {}
    top: dict = {}
    texts_by_condition: dict = {}
    ms: dict = {}
    ranked_len: dict = {}
    pvalues: dict = {}
    embed_seconds: dict[str, float] = {}
    batches = -(-len(order) // config.batch_size)
    from tqdm import tqdm

    bar = tqdm(
        total=len(conditions) * len(specs) * batches,
        desc="eval",
        unit="batch",
        file=sys.stderr,
        disable=not config.progress,
        dynamic_ncols=True,
    )
    try:
        for cond in conditions:
            texts = garble_queries(clean, cond, config.seed)
            texts_by_condition[cond.name] = texts
            qids, qtexts = list(texts), list(texts.values())
            t0 = time.perf_counter()
            qvecs = cache.vectors(qtexts) if any_dense else None
            embed_seconds[cond.name] = time.perf_counter() - t0
            rankings: dict[str, dict[str, list[str]]] = {}
            for spec in specs:
                bar.set_postfix_str(f"{cond.name} / {spec.label}")
                retriever = retrievers[spec.label]
                out: dict[str, list[str]] = {}
                t0 = time.perf_counter()
                if progress is not None:
                    progress(spec.label, 0, batches)
                for start in range(0, len(qids), config.batch_size):
                    stop = start + config.batch_size
                    vecs = qvecs[start:stop] if qvecs is not None and retriever.uses_dense else None
                    for qid, r in zip(qids[start:stop], retriever.rank(qtexts[start:stop], k=depth, query_vectors=vecs)):
                        out[qid] = to_targets(r.ids, doc_of, config.cutoff)
                    bar.update(1)
                    if progress is not None:
                        progress(spec.label, start // config.batch_size + 1, batches)
                ms.setdefault(cond.name, {})[spec.label] = 1000 * (time.perf_counter() - t0) / max(len(qids), 1)
                rankings[spec.label] = out
                means, pq = score(qrels, out, config.metrics)
                results.setdefault(cond.name, {})[spec.label] = means
                per_query.setdefault(cond.name, {})[spec.label] = pq
                top.setdefault(cond.name, {})[spec.label] = {q: v[:TOP_SHOWN] for q, v in out.items()}
                ranked_len.setdefault(cond.name, {})[spec.label] = sum(map(len, out.values())) / max(len(out), 1)
            base = specs[0].label
            pvalues[cond.name] = significance(
                qrels,
                (base, rankings[base]),
                [(s.label, rankings[s.label]) for s in specs[1:]],
                config.metrics,
                config.stat_test,
                seed=config.seed,
            )
    finally:
        bar.close()

    meta = {
        "kb_dir": str(kb_dir),
        "model": embedder.name,
        "precision": getattr(embedder, "precision", None),
        "kb_documents": len({d for d in doc_of.values()}) if doc_of is not None else None,
        "kb_chunks": int(kb.snapshot().size),
        "seed": config.seed,
        "limit": config.limit,
        "depth": depth,
        "cutoff": config.cutoff,
        "candidates": config.candidates,
        "stat_test": config.stat_test,
        "query_embedding_seconds": embed_seconds,
        "warmup_seconds": warmup,
        "query_cache": {"hits": cache.hits, "embedded": cache.misses, "file": str(cache.path) if cache.path else None},
        "ingest": (
            {
                **ingest_report.counts(),
                "chunks_embedded": ingest_report.chunks_embedded,
                "chunks_reused": ingest_report.chunks_reused,
                "seconds": round(ingest_report.seconds, 2),
            }
            if ingest_report is not None
            else None
        ),
        "seconds": round(time.perf_counter() - started, 2),
        "history": (
            {"file": str(config.history), "pairs": replay.pairs, "questions": len(replay.questions)}
            if replay is not None
            else None
        ),
    }
    return EvalReport(
        dataset=labelled.name,
        level=labelled.level,
        n_queries=len(order),
        conditions=tuple(c.name for c in conditions),
        retrievers=tuple(s.label for s in specs),
        metrics=tuple(config.metrics),
        results=results,
        per_query=per_query,
        top=top,
        queries=texts_by_condition,
        qrels=qrels,
        pvalues=pvalues,
        ms_per_query=ms,
        ranked=ranked_len,
        betas={s.label: s.hopfield.beta for s in specs if s.hopfield is not None},
        warnings=tuple(warnings),
        meta=meta,
    )


def evaluate(
    kb: KnowledgeBase | str | Path,
    records: LabelledSet | Sequence[dict],
    retrievers: Sequence[str] = RETRIEVERS,
    k: int = 10,
    embedder: TextEmbedder | None = None,
    name: str = "labelled set",
    progress: Progress | None = None,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """A quick table for the app: one row per retriever with recall, MRR, nDCG and hit rate at k
    on clean queries, the p-value of recall@k against the first retriever, and ms per query.

    records: a LabelledSet, or {"question", "relevant" | "relevant_chunks", "id"?} dicts.
    progress: see run_eval; batch_size: questions ranked per call (smaller: finer progress, same results).
    """
    from eval.datasets import from_records

    labelled = records if isinstance(records, LabelledSet) else from_records(list(records), name)
    metrics = (f"recall@{k}", f"mrr@{k}", f"ndcg@{k}", f"hit_rate@{k}")
    config = EvalConfig(
        retrievers=tuple(retrievers), metrics=metrics, cutoff=max(k, 10), depth=max(k, 10) * 3, batch_size=batch_size
    )
    report = run_eval(labelled, kb, config, embedder=embedder, progress=progress)
    rows = []
    for r in report.retrievers:
        p = report.pvalues["clean"].get(r, {}).get(f"recall@{k}")
        rows.append(
            {
                "retriever": r,
                **{m: round(v, 3) for m, v in report.results["clean"][r].items()},
                f"p(recall@{k}) vs {report.baseline}": None if p is None else round(p, 3),
                "ms/query": round(report.ms_per_query["clean"][r], 1),
                "questions": report.n_queries,
            }
        )
    return rows
