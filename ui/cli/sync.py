"""`kb ingest` and `kb sync`: files, folders, exports and help-centre websites into the KB.

Exit codes: 0 ok, 1 some sources failed (the rest was committed), 2 usage or KB error (commands.py's group).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ingest import ChunkConfig, CrawlConfig, IngestConfig, IngestReport, ingest, report_dict, report_line
from kb import KBError, KnowledgeBase
from ui.cli.options import JSON, KB_DIR, MODEL_NAMES
from ui.cli.terminal import safe_text

CRAWL = CrawlConfig()


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
        parse_workers=o["parse_workers"],
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
        "--parse-workers",
        type=click.IntRange(min=1),
        default=None,
        help="Files parsed side by side, each in its own worker process (default: the CPU count, at most 4).",
    ),
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


@click.command("ingest")
@_with_options
def ingest_cmd(paths, kb_dir, as_json, **options):
    """Add new and changed files under PATHS to the KB (only changed files are re-embedded).

    A document's key is its path inside the folder given (or its file name): the same file arriving
    again, from any folder or as an upload, is a new version of the same document."""
    _ingest_command(paths, kb_dir, as_json, False, options)


@click.command("sync")
@_with_options
def sync_cmd(paths, kb_dir, as_json, **options):
    """Make the KB mirror PATHS: add new, update changed, remove documents whose files are gone."""
    _ingest_command(paths, kb_dir, as_json, True, options)
