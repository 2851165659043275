"""The `kb` command line. Human-readable output by default, --json for scripts.

Exit codes: 0 ok, 1 some files failed (ingest/sync) or check found problems,
2 usage or KB error.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from ingest import ChunkConfig, CrawlConfig, IngestConfig, IngestReport, ingest, report_dict, report_line
from kb import CROSS_ENCODER, DEFAULT_MODEL, PACKAGED_MODELS, KBError, KnowledgeBase
from retriever import DEFAULT_CANDIDATES, RETRIEVERS, HopfieldConfig, make_retriever, search_dict
from ui.cli.app_command import ui
from ui.cli.ask import ask
from ui.cli.chat import chat
from ui.cli.evaluate import eval_cmd
from ui.cli.insights import insights
from ui.cli.memory import memory
from ui.cli.terminal import safe_text

# The default first, then the other packaged models (kb.embedder.PACKAGED_MODELS is the one list).
MODEL_NAMES = [DEFAULT_MODEL] + sorted(m for m in PACKAGED_MODELS if m != DEFAULT_MODEL)
KB_DIR = click.option(
    "--kb-dir", default="kb_data", show_default=True, type=click.Path(path_type=Path), help="Knowledge-base directory."
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
CRAWL = CrawlConfig()


def _fail(message: str) -> None:
    click.echo(f"error: {safe_text(message)}", err=True)
    sys.exit(2)


class KBGroup(click.Group):
    """Turns every error into one clear line and exit code 2 instead of a traceback (HOPFIELD_KB_DEBUG=1
    shows the traceback of an unexpected one); Ctrl+C exits 130 with a line saying what was kept."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KBError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a user never sees a traceback; the message says what broke
            if os.environ.get("HOPFIELD_KB_DEBUG"):
                raise
            _fail(
                f"unexpected failure ({type(exc).__name__}: {exc}); nothing more was changed. "
                "Run again with HOPFIELD_KB_DEBUG=1 for the details"
            )


@click.group(cls=KBGroup)
@click.version_option(package_name="hopfield-kb")
def main() -> None:
    """hopfield-kb: a local knowledge base with modern-Hopfield retrieval and cited answers."""


def _print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report_dict(report, details=True), indent=2))
    else:
        for failure in report.failed:
            click.echo(f"failed: {safe_text(failure)}", err=True)
        for warning in report.warnings:
            click.echo(f"warning: {safe_text(warning)}", err=True)
        click.echo(("plan (dry run): " if report.dry_run else "") + report_line(report))
        if report.dry_run:
            for label in ("added", "updated", "removed"):
                for source in getattr(report, label):
                    click.echo(f"  {label}: {safe_text(source)}")
    if report.failed:
        sys.exit(1)


def _model_for(kb_dir: Path, requested: str | None) -> str:
    """The model a sync embeds with: the KB's own (another one is refused, naming `kb reembed`), the one asked
    for a new KB, or the default."""
    from kb import DEFAULT_MODEL, kb_model

    built = kb_model(kb_dir)
    if requested and built and requested != built:
        raise KBError(
            f"the KB at {kb_dir} was built with the embedding model {built!r}; --model {requested} would "
            f"mix two models' vectors. Move the whole KB to it with `kb reembed --model {requested} "
            f"--kb-dir {kb_dir}`, sync without --model to keep {built!r}, or sync into a new --kb-dir"
        )
    return requested or built or DEFAULT_MODEL


def _ingest_command(paths, kb_dir, as_json, mirror, options: dict):
    from ingest import Budget, OcrConfig
    from kb import EmbedderConfig

    o = options
    model = _model_for(kb_dir, o["model"])
    config = IngestConfig(
        chunking=ChunkConfig(size=o["chunk_size"], overlap=o["overlap"]),
        mirror=mirror,
        dry_run=o["dry_run"],
        wait=o["wait"],
        progress=not as_json and sys.stderr.isatty(),
        embedder=EmbedderConfig(model=model, precision=o["precision"] or "auto"),
        visibility=o["visibility"],
        tags=tuple(o["tags"]),
        key_prefix=o["key_prefix"],
        budget=Budget(seconds=o["parse_seconds"], memory_mb=o["parse_memory_mb"]),
        follow_links=o["follow_links"],
        ocr=OcrConfig(enabled=not o["no_ocr"], language=o["ocr_language"], page_seconds=o["ocr_page_seconds"]),
        base_url=o["base_url"],
        crawl=CrawlConfig(
            delay=o["crawl_delay"], timeout=o["crawl_timeout"], max_pages=o["max_pages"], scope=o["crawl_scope"]
        ),
    )
    before = _token(kb_dir)
    engine = None
    if o["ray_address"] is not None and not o["dry_run"]:
        from ingest import RayConfig, RayEngine

        engine = RayEngine(RayConfig(address=o["ray_address"] or None, actors=o["ray_actors"])).connect()
    try:
        report = ingest(kb_dir, paths, config, engine=engine)
    except KeyboardInterrupt:
        # Ctrl+C may land after the commit: say which, so nobody re-runs a sync in doubt or trusts a half one.
        if _token(kb_dir) != before:
            click.echo("interrupted after the commit: the changes are saved in the KB", err=True)
        else:
            click.echo("interrupted before the commit: nothing was changed; the KB is as it was", err=True)
        sys.exit(130)
    finally:
        if engine is not None:
            engine.close()
    _print_report(report, as_json)


def _token(kb_dir: Path) -> str | None:
    try:
        return KnowledgeBase(kb_dir).token() if (Path(kb_dir) / "kb.sqlite").exists() else None
    except KBError:
        return None


_ingest_options = [
    # Text, not click.Path: a web address (https://help.example.com/sitemap.xml) must keep its "//".
    click.argument("paths", nargs=-1, required=True, type=str),
    KB_DIR,
    JSON,
    click.option("--chunk-size", default=ChunkConfig().size, show_default=True, help="Chunk size in tokens."),
    click.option("--overlap", default=ChunkConfig().overlap, show_default=True, help="Chunk overlap in tokens."),
    click.option("--wait", default=0.0, show_default=True, help="Seconds to wait for another writer."),
    click.option("--dry-run", is_flag=True, help="Print the plan; change nothing."),
    click.option(
        "--model",
        default=None,
        metavar="NAME",
        help=f"Embedding model of a new KB: {' or '.join(MODEL_NAMES)} [default: the KB's own; "
        f"{MODEL_NAMES[0]} for a new KB]. To change an existing KB's model, use `kb reembed`.",
    ),
    click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "bf16", "int8"]),
        default=None,
        help="Embedding precision (default auto: bf16 where the CPU has it; an ONNX model runs int8).",
    ),
    click.option(
        "--visibility",
        default="internal",
        show_default=True,
        help="Who may see these documents through the HTTP API (e.g. public); keys are scoped to labels.",
    ),
    click.option("--tag", "tags", multiple=True, help="A tag for these documents, for search filters (repeatable)."),
    click.option("--key-prefix", default="", help="Put before every document key (keeps two folders' keys apart)."),
    click.option(
        "--parse-seconds",
        default=60.0,
        show_default=True,
        help="Time one file may take to parse and chunk; past it the file fails and the run goes on.",
    ),
    click.option("--parse-memory-mb", default=3072, show_default=True, help="Memory one file's parsing may use."),
    click.option(
        "--follow-links",
        is_flag=True,
        help="Follow symbolic links that lead outside the folder (default: they fail with a reason).",
    ),
    click.option("--no-ocr", is_flag=True, help="Do not read PDF pages without a text layer by OCR (Tesseract)."),
    click.option(
        "--ocr-language",
        default="eng",
        show_default=True,
        help="Tesseract language(s) for scanned pages, e.g. eng+deu (their traineddata installed).",
    ),
    click.option(
        "--ocr-page-seconds",
        default=60.0,
        show_default=True,
        help="Time limit for reading one scanned page; past it the page is skipped with a warning.",
    ),
    click.option(
        "--base-url",
        default="",
        metavar="URL",
        help="A Confluence export's wiki address (https://wiki.example.com): its pages cite their live URL.",
    ),
    click.option(
        "--crawl-delay",
        type=click.FloatRange(0),
        default=CRAWL.delay,
        show_default=True,
        help="For a web address (a sitemap.xml or a start page): seconds between two requests to the site.",
    ),
    click.option(
        "--crawl-timeout",
        type=click.FloatRange(0, min_open=True),
        default=CRAWL.timeout,
        show_default=True,
        help="Seconds a web page may take to answer and arrive; past it the page fails and the crawl goes on.",
    ),
    click.option(
        "--max-pages", type=click.IntRange(1), default=CRAWL.max_pages, show_default=True, help="Pages one crawl reads."
    ),
    click.option(
        "--scope",
        "crawl_scope",
        default="",
        metavar="PREFIX",
        help="A start page's crawl stays under this path (/hc/en-us/); default: the start page's folder.",
    ),
    # An option with an optional value: `kb sync PATH --ray` (a cluster on this machine, RAY_ADDRESS, or a
    # fresh local Ray) or `kb sync PATH --ray HOST:PORT`. Put it after PATH: `--ray PATH` reads PATH as the address.
    click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="",
        default=None,
        metavar="[ADDRESS]",
        help="Parse and embed on a Ray cluster (HOST:PORT of its head; none: this machine's); "
        "this process still writes and commits the KB.",
    ),
    click.option(
        "--ray-actors",
        type=click.IntRange(1),
        default=None,
        help="With --ray: embedding actors (default: one per GPU, else one per node).",
    ),
]


def _with_options(func):
    for option in reversed(_ingest_options):
        func = option(func)
    return func


@main.command("ingest")
@_with_options
def ingest_cmd(paths, kb_dir, as_json, **options):
    """Add new and changed files under PATHS to the KB (only changed files are re-embedded).

    A document's key is its path inside the folder given (or its file name): the same file arriving
    again, from any folder or as an upload, is a new version of the same document."""
    _ingest_command(paths, kb_dir, as_json, False, options)


@main.command("sync")
@_with_options
def sync_cmd(paths, kb_dir, as_json, **options):
    """Make the KB mirror PATHS: add new, update changed, remove documents whose files are gone."""
    _ingest_command(paths, kb_dir, as_json, True, options)


@main.command()
@KB_DIR
@JSON
def stats(kb_dir, as_json):
    """Documents, chunks, model and size of the KB."""
    kb = KnowledgeBase(kb_dir)
    info = kb.stats()
    # Read at question time, not stored: the answer layer's second reader (retriever.cross_encoder).
    info["answer_reader"] = (
        CROSS_ENCODER.describe()
        if as_json
        else (f"{CROSS_ENCODER.name} ({CROSS_ENCODER.licence}, from {CROSS_ENCODER.distribution}=={CROSS_ENCODER.version})")
    )
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    low = info.pop("low_confidence_pages")
    for key, value in info.items():
        click.echo(f"{key:>18}: {value}")
    for page in low:
        click.echo(
            f"  low OCR confidence: {page['document']} p. {page['page']} ({page['confidence']:.0%}): "
            "check its citations against the scan"
        )


@main.command()
@click.option("--model", required=True, metavar="NAME", help=f"The model to move the KB to: {' or '.join(MODEL_NAMES)}.")
@KB_DIR
@JSON
@click.option("--wait", default=0.0, show_default=True, help="Seconds to wait for another writer.")
def reembed(model, kb_dir, as_json, wait):
    """Re-embed every chunk with another model and switch the KB to it, in one commit.

    Searches keep answering from the old model until the commit; syncs wait (or are refused) meanwhile.
    Interrupted or killed before the commit, the KB is unchanged."""
    from kb import EmbedderConfig
    from kb import reembed as run

    report = run(kb_dir, EmbedderConfig(model=model), wait=wait, progress=not as_json and sys.stderr.isatty())
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    click.echo(
        f"re-embedded {report.chunks} chunks ({report.texts} distinct texts) with {report.model} "
        f"(was {report.model_before}); {report.questions} question-memory entries; {report.seconds:.1f} s"
    )


@main.command()
@KB_DIR
@JSON
@click.option("--deep", is_flag=True, help="Compare every snapshot vector with kb.sqlite (default: a sample of 512).")
@click.option(
    "--repair",
    is_flag=True,
    help="Rewrite the snapshot files and checksums from kb.sqlite (no re-embedding), then check deeply.",
)
@click.option("--wait", default=0.0, show_default=True, help="Seconds to wait for another writer (with --repair).")
def check(kb_dir, as_json, deep, repair, wait):
    """Integrity check: checksums of the snapshot files, FAISS ids against chunk rows, vectors against kb.sqlite."""
    kb = KnowledgeBase(kb_dir)
    before = None
    if repair:
        before = kb.check()
        report = kb.repair(wait=wait)
    else:
        report = kb.check(deep=deep)
    if as_json:
        payload = {**asdict(report), "ok": report.ok}
        if before is not None:
            payload["before_repair"] = {**asdict(before), "ok": before.ok}
        click.echo(json.dumps(payload, indent=2))
    else:
        if before is not None:
            click.echo("before repair: " + ("ok" if before.ok else f"{len(before.problems)} problem(s)"))
            for problem in before.problems:
                click.echo(f"  {safe_text(problem)}")
            click.echo("repaired: snapshot files rewritten from kb.sqlite; checked again:")
        click.echo(
            f"{report.n_documents} documents, {report.n_chunks} chunks, {report.n_vectors} vectors "
            f"({report.vectors_compared} compared with kb.sqlite): " + ("ok" if report.ok else "PROBLEMS")
        )
        for problem in report.problems:
            click.echo(f"  {safe_text(problem)}")
        for note in report.notes:
            click.echo(f"  note: {safe_text(note)}")
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("doc")
@KB_DIR
@JSON
def history(doc, kb_dir, as_json):
    """Version history of DOC (its file name or full source path)."""
    entries = KnowledgeBase(kb_dir).history(doc)
    if not entries:
        _fail(f"no document {doc!r} in the KB history; `kb stats` lists the KB")
    if as_json:
        click.echo(json.dumps([asdict(e) for e in entries], indent=2))
        return
    import datetime as dt

    for e in entries:
        when = dt.datetime.fromtimestamp(e.at).isoformat(timespec="seconds")
        click.echo(
            f"v{e.version:<3} {e.event:<8} {when}  {e.n_chunks:>4} chunks  {e.content_hash[:12]}  {safe_text(e.source)}"
        )


@main.command()
@click.argument("question")
@KB_DIR
@JSON
@click.option("-k", "--top-k", default=5, show_default=True, help="Number of passages.")
@click.option("--retriever", "retriever_name", type=click.Choice(RETRIEVERS), default="hopfield", show_default=True)
@click.option("--beta", default=HopfieldConfig().beta, show_default=True, help="Hopfield inverse temperature.")
@click.option("--candidates", "-K", default=DEFAULT_CANDIDATES, show_default=True, help="First-stage candidates.")
def search(question, kb_dir, as_json, top_k, retriever_name, beta, candidates):
    """Retrieve the passages that best answer QUESTION."""
    kb = KnowledgeBase(kb_dir)
    retriever = make_retriever(retriever_name, kb, top_k=top_k, candidates=candidates, hopfield=HopfieldConfig(beta=beta))
    result = retriever.search(question)
    if as_json:
        click.echo(json.dumps(search_dict(result, details=True), indent=2))
        return
    for hit in result.hits:
        c = hit.chunk
        click.echo(safe_text(f"[{hit.rank}] {c.doc_title} ({c.doc_name} v{c.doc_version}, {c.where}) score {hit.score:.3f}"))
        snippet = " ".join(c.text.split())
        click.echo(f"    {safe_text(snippet[:300])}{'...' if len(snippet) > 300 else ''}")
        if c.doc_url:
            click.echo(f"    {safe_text(c.doc_url)}")
    if result.diagnostics:
        d = result.diagnostics
        click.echo(
            f"hopfield: beta {d.beta}, {d.steps} steps, converged {d.converged}, "
            f"entropy {d.entropy:.3f}, {d.candidates} candidates"
        )
        if d.repairs:
            click.echo("repaired: " + safe_text(", ".join(f"{a} -> {b}" for a, b in d.repairs)))


main.add_command(ask)
main.add_command(chat)
main.add_command(ui)
main.add_command(eval_cmd)
main.add_command(memory)
main.add_command(insights)


def _plugins() -> None:
    """Commands other packages add to `kb` (the HTTP API's `kb serve` and `kb keys`), by entry point, so
    this package never imports theirs."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="hopfield_kb.commands"):
        if entry.name not in main.commands:
            main.add_command(_LazyCommand(entry), entry.name)


class _LazyCommand(click.Command):
    """A plug-in command loaded only when it runs or shows its help (loading the API costs ~1 s)."""

    def __init__(self, entry) -> None:
        super().__init__(entry.name, help=f"({entry.value.split(':')[0]}) see `kb {entry.name} --help`")
        self.entry = entry
        self._real: click.Command | None = None

    def real(self) -> click.Command:
        if self._real is None:
            try:
                self._real = self.entry.load()
            except ImportError as exc:
                # A plain install leaves the HTTP API out (pyproject.toml extras): say which extra brings it.
                raise click.ClickException(
                    f"`kb {self.name}` needs the HTTP API's packages ({exc.name} is missing): pip install 'hopfield-kb[api]'"
                ) from None
        return self._real

    def get_short_help_str(self, limit: int = 45) -> str:
        return {
            "serve": "Serve the HTTP API (search, answers, documents, sync).",
            "keys": "Create, list and revoke API keys.",
            "mcp": "Serve the KB to an MCP client on stdio.",
        }.get(self.name or "", super().get_short_help_str(limit))

    def main(self, *args, **kwargs):
        return self.real().main(*args, **kwargs)

    def make_context(self, info_name, args, parent=None, **extra):
        return self.real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        return self.real().invoke(ctx)


_plugins()
