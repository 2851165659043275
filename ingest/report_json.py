"""An ingest report as plain JSON values and as one line of text: what `kb ingest/sync`, the app and the API's
sync jobs all show of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.config import IngestReport


def report_dict(report: IngestReport, root: Path | None = None, details: bool = False) -> dict[str, Any]:
    """{"counts", "added", "updated", "removed", "failed": [{"path", "reason"}], "chunks_embedded", "chunks_reused",
    "seconds"}.

    root: the folder that was synced, for a reply that must not show the server's paths: a failed file is named by
    its path inside root (by its file name when outside it) and root's path in a reason becomes root's name.
    details (the command line): also "unchanged", "warnings", "chunks_written", "stage_seconds" ([stage, seconds]
    pairs) and "dry_run".
    """
    failed = [
        {"path": f.path, "reason": f.reason}
        if root is None
        else {"path": _relative(f.path, root), "reason": f.reason.replace(str(root), root.name)}
        for f in report.failed
    ]
    out: dict[str, Any] = {
        "counts": report.counts(),
        "added": list(report.added),
        "updated": list(report.updated),
        "removed": list(report.removed),
        "failed": failed,
        "chunks_embedded": report.chunks_embedded,
        "chunks_reused": report.chunks_reused,
        "seconds": round(report.seconds, 3),
    }
    if details:
        out.update(
            {
                "unchanged": list(report.unchanged),
                "warnings": list(report.warnings),
                "chunks_written": report.chunks_written,
                "stage_seconds": [[stage, round(s, 3)] for stage, s in report.stage_seconds],
                "dry_run": report.dry_run,
            }
        )
    return out


def report_line(report: IngestReport) -> str:
    """ "2 added, 0 updated, 0 unchanged, 0 removed, 0 failed; 3 chunks embedded, 0 reused; 1.2 s"."""
    counts = ", ".join(f"{v} {k}" for k, v in report.counts().items())
    return f"{counts}; {report.chunks_embedded} chunks embedded, {report.chunks_reused} reused; {report.seconds:.1f} s"


def _relative(path: str, root: Path) -> str:
    """A failed file as its key inside the source folder; a path outside it by its file name only."""
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return Path(path).name
