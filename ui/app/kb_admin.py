"""The knowledge-base page: documents with version / ingest time / chunks, uploads, folder re-ingest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import streamlit as st

from ingest import IngestConfig, IngestReport, ingest, report_line
from kb import KBError, KnowledgeBase, web_url
from ui.app import state as app_state
from ui.app.files import ALLOWED_EXTENSIONS, MAX_UPLOAD_MB, save_upload
from ui.app.render import md_escape

STAGES = {"parse": "Reading and chunking", "embed": "Embedding", "write": "Writing"}


def _open_kb(path: Path) -> KnowledgeBase | None:
    try:
        return app_state.knowledge_base(path)
    except KBError:
        return None


def _documents_table(kb: KnowledgeBase) -> None:
    docs = kb.documents()
    if not docs:
        st.info("No documents yet: upload files or ingest a folder below.", icon=":material/info:")
        return
    rows = [
        {
            "document": d.name,
            "title": d.title,
            "type": d.kind,
            "version": d.version,
            "ingested": dt.datetime.fromtimestamp(d.ingested_at).strftime("%Y-%m-%d %H:%M:%S"),
            "chunks": d.n_chunks,
            "size (KB)": round(d.size_bytes / 1024, 1),
            "source": d.source,
            "updated (export)": d.updated_at,
            "url": web_url(d.url),
        }
        for d in docs
    ]
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        key="documents_table",
        column_config={"url": st.column_config.LinkColumn("url")},
    )


def _progress_callback(bar):
    def on_progress(stage: str, fraction: float) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{STAGES.get(stage, stage.capitalize())}: {fraction:.0%}")

    return on_progress


def _summary(report: IngestReport) -> None:
    (st.warning if report.failed else st.success)(md_escape(report_line(report)), icon=":material/task_alt:")
    details = [(label, getattr(report, label)) for label in ("added", "updated", "removed")]
    for label, sources in details:
        if sources:
            st.caption(md_escape(f"{label}: " + ", ".join(Path(s).name for s in sources)))
    for failure in report.failed:
        st.error(md_escape(f"{Path(failure.path).name}: {failure.reason}"), icon=":material/error:")
    for warning in report.warnings[:10]:
        st.caption(md_escape(f"warning: {warning}"))


def _run_ingest(paths: list[Path], path: Path, mirror: bool, origin: str) -> None:
    """Ingest with a progress bar where it runs; the report is shown next to the button named by origin
    ("upload" or "folder") after the rerun."""
    bar = st.progress(0.0, text="Starting...")
    report = ingest(
        path,
        paths,
        IngestConfig(mirror=mirror, wait=30.0),
        embedder=app_state.embedder(path),
        on_progress=_progress_callback(bar),
    )
    bar.progress(1.0, text="Done")
    st.session_state["kb_last_report"] = (origin, report)


def _report_here(origin: str) -> None:
    """The last ingest's summary (and refused uploads) when the button for origin started it."""
    last = st.session_state.get("kb_last_report")
    if last is not None and last[0] == origin:
        st.session_state.pop("kb_last_report")
        _summary(last[1])
    if origin == "upload":
        for message in st.session_state.pop("kb_refused_uploads", []):
            st.error(md_escape(message), icon=":material/error:")


def _uploads(path: Path) -> None:
    st.subheader("Upload documents")
    st.caption(
        md_escape(
            f"Allowed: {', '.join(ALLOWED_EXTENSIONS)}; up to {MAX_UPLOAD_MB} MB each. "
            "A file with the name of a document already in the KB (uploaded or synced from a "
            "folder) becomes a new version of that document, not a second copy."
        )
    )
    key = f"uploader_{st.session_state.get('uploader_round', 0)}"
    files = st.file_uploader(
        "Files to add or update",
        type=[e.lstrip(".") for e in ALLOWED_EXTENSIONS],
        accept_multiple_files=True,
        key=key,
        max_upload_size=MAX_UPLOAD_MB,
    )
    if st.button("Ingest uploaded files", disabled=not files, type="primary", icon=":material/upload:"):
        saved: list[Path] = []
        refused: list[str] = []
        for f in files or []:
            try:
                saved.append(save_upload(path, f.name, f.getvalue()))
            except KBError as exc:
                refused.append(app_state.message(exc))
        # Shown after the rerun below, next to the ingest summary.
        st.session_state["kb_refused_uploads"] = refused
        st.session_state["uploader_round"] = st.session_state.get("uploader_round", 0) + 1
        if saved:
            with app_state.shown_errors("Ingesting the uploads"):
                _run_ingest(saved, path, mirror=False, origin="upload")
        st.rerun()
    _report_here("upload")


def _folder(path: Path) -> None:
    st.subheader("Re-ingest a folder")
    folders = app_state.source_folders()
    if not folders:
        st.info(
            "No source folders are configured, so none can be re-ingested from here: start the app with "
            "`kb ui --source FOLDER` to allow one.",
            icon=":material/info:",
        )
        return
    st.caption(
        "New and changed files are ingested; unchanged files are skipped without re-embedding. "
        "A document keeps one identity (its path inside the folder): a changed file becomes a new version."
    )
    folder = st.selectbox("Configured source folder", [str(f) for f in folders], key="reingest_folder")
    mirror = st.checkbox("Also remove documents whose files are gone from the folder (sync)", key="reingest_mirror")
    if st.button("Re-ingest folder", icon=":material/sync:"):
        target = Path(folder)
        if target not in folders or not target.is_dir():  # the list is the only way in; the folder may have gone
            st.error(md_escape(f"{target} is not an available source folder"), icon=":material/error:")
            return
        with app_state.shown_errors("Re-ingesting the folder"):
            _run_ingest([target], path, mirror=mirror, origin="folder")
            st.rerun()
    _report_here("folder")


def render() -> None:
    st.title("Knowledge base")
    path = app_state.kb_dir()
    kb = _open_kb(path)
    if kb is None:
        st.info(md_escape(f"There is no knowledge base at {path} yet; uploading files creates it."), icon=":material/info:")
    else:
        with app_state.shown_errors("Reading the knowledge base"):
            stats: dict[str, Any] = kb.stats()
            c1, c2, c3 = st.columns(3)
            c1.metric("Documents", stats["documents"])
            c2.metric("Chunks", stats["chunks"])
            c3.metric("Model", str(stats["model"]))
            st.caption(md_escape(f"Folder: {path}"))
            low = stats["low_confidence_pages"]
            if low:
                pages = "; ".join(f"{p['document']} p. {p['page']} ({p['confidence']:.0%})" for p in low[:20])
                st.warning(
                    md_escape(
                        f"{len(low)} scanned page(s) read by OCR with low confidence; check their "
                        f"citations against the scan: {pages}"
                    ),
                    icon=":material/document_scanner:",
                )
    if kb is not None:
        with app_state.shown_errors("Listing documents"):
            _documents_table(kb)
    _uploads(path)
    _folder(path)
