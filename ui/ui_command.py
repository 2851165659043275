"""`kb ui`: serve the Streamlit app (headless) on a KB directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from ui.app_files import MAX_UPLOAD_MB

# How `kb ui` hands its options to the app process.
KB_DIR_ENV = "HOPFIELD_KB_DIR"
LLM_URL_ENV = "HOPFIELD_KB_LLM_URL"
LLM_MODEL_ENV = "HOPFIELD_KB_LLM_MODEL"
APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(kb_dir: Path, port: int, host: str) -> list[str]:
    """The `streamlit run` command line for the app on kb_dir."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", host,
        "--server.maxUploadSize", str(MAX_UPLOAD_MB),
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        # Errors reach users as our own one-line messages; never as a traceback.
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "minimal",
        "--", "--kb-dir", str(kb_dir),
    ]


@click.command("ui")
@click.option("--kb-dir", default="kb_data", show_default=True, type=click.Path(path_type=Path),
              help="Knowledge-base directory (created by the first upload if it does not exist).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves other machines too.")
@click.option("--llm-url", default=None, help="OpenAI-compatible endpoint for generative answers (off by default).")
@click.option("--llm-model", default=None, help="Model name at --llm-url.")
def ui(kb_dir, port, host, llm_url, llm_model):
    """Serve the app: ask questions with cited answers, manage documents, evaluate retrieval."""
    if bool(llm_url) != bool(llm_model):
        raise click.UsageError("--llm-url and --llm-model go together")
    kb_dir = kb_dir.resolve()
    env = dict(os.environ)
    env[KB_DIR_ENV] = str(kb_dir)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if llm_url:
        env[LLM_URL_ENV], env[LLM_MODEL_ENV] = llm_url, llm_model
    click.echo(f"Serving the knowledge base at {kb_dir} on http://{host}:{port} (Ctrl+C stops)", err=True)
    try:
        code = subprocess.call(streamlit_command(kb_dir, port, host), env=env)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
