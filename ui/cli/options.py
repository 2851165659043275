"""The options every `kb` command shares, defined once."""

from __future__ import annotations

from pathlib import Path

import click

from kb import DEFAULT_MODEL, PACKAGED_MODELS

# The default first, then the other packaged models (kb.embedder.PACKAGED_MODELS is the one list).
MODEL_NAMES = [DEFAULT_MODEL] + sorted(m for m in PACKAGED_MODELS if m != DEFAULT_MODEL)
KB_DIR = click.option(
    "--kb-dir", default="kb_data", show_default=True, type=click.Path(path_type=Path), help="Knowledge-base directory."
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
