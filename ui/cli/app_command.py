"""`kb ui`: serve the Streamlit app (headless) on a KB directory.

Bound to 127.0.0.1 by default. Served on any other address it needs a sign-in password
(HOPFIELD_KB_UI_PASSWORD, or --password-file) and refuses to start without one; the app gets only
an scrypt hash of it (ui/app/signin.py). Folder re-ingest is limited to the folders given with --source. SIGTERM
or SIGINT stops the Streamlit server and every process it started.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from ui.launch import (
    KB_DIR_ENV,
    LLM_MODEL_ENV,
    LLM_URL_ENV,
    PASSWORD_ENV,
    SIGN_IN_ENV,
    SOURCES_ENV,
    password_token,
    streamlit_command,
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_until_signalled(command: list[str], env: dict) -> int:
    """Run command in its own process group; SIGTERM / SIGINT to us stop the whole group, then we exit."""
    proc = subprocess.Popen(command, env=env, start_new_session=True)

    def stop(signum, frame) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return proc.wait()


@click.command("ui")
@click.option(
    "--kb-dir",
    default="kb_data",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Knowledge-base directory (created by the first upload if it does not exist).",
)
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Port to serve on.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help=f"Address to listen on. Any address but loopback needs a sign-in password (${PASSWORD_ENV} or --password-file).",
)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="File whose first line is the sign-in password.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="A folder the Knowledge base page may re-ingest (repeatable); no other folder can be.",
)
@click.option("--llm-url", default=None, help="OpenAI-compatible endpoint for generative answers (off by default).")
@click.option("--llm-model", default=None, help="Model name at --llm-url.")
def ui(kb_dir, port, host, password_file, sources, llm_url, llm_model):
    """Serve the app: ask questions with cited answers, manage documents, evaluate retrieval."""
    if importlib.util.find_spec("streamlit") is None:
        # A plain install leaves the app out (pyproject.toml extras): say which extra brings it.
        raise click.ClickException("`kb ui` needs the app's packages (streamlit is missing): pip install 'hopfield-kb[app]'")
    if bool(llm_url) != bool(llm_model):
        raise click.UsageError("--llm-url and --llm-model go together")
    password = (
        (password_file.read_text(encoding="utf-8").splitlines() or [""])[0]
        if password_file
        else os.environ.get(PASSWORD_ENV, "")
    )
    if not is_loopback(host) and len(password) < 8:
        raise click.UsageError(
            f"serving on {host} makes the app reachable from other machines: set a sign-in "
            f"password of 8+ characters in ${PASSWORD_ENV} or --password-file"
        )
    kb_dir = kb_dir.resolve()
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env[KB_DIR_ENV] = str(kb_dir)
    env[SOURCES_ENV] = json.dumps([str(Path(s).resolve()) for s in sources])
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if password:
        env[SIGN_IN_ENV] = password_token(password)
    if llm_url:
        env[LLM_URL_ENV], env[LLM_MODEL_ENV] = llm_url, llm_model
    click.echo(
        f"Serving the knowledge base at {kb_dir} on http://{host}:{port}"
        f"{' (sign-in required)' if password else ''} (Ctrl+C stops)",
        err=True,
    )
    sys.exit(run_until_signalled(streamlit_command(kb_dir, port, host), env))
