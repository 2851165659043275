"""`kb ui`: serve the Streamlit app (headless) on a KB directory.

Bound to 127.0.0.1 by default. Served on any other address it needs a sign-in password
(HOPFIELD_KB_UI_PASSWORD, or --password-file) and refuses to start without one; the app gets only
an scrypt hash of it (ui/app_signin.py). Folder re-ingest is limited to the folders given with --source. SIGTERM
or SIGINT stops the Streamlit server and every process it started.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from ingest import MAX_UPLOAD_MB

# How `kb ui` hands its options to the app process.
KB_DIR_ENV = "HOPFIELD_KB_DIR"
LLM_URL_ENV = "HOPFIELD_KB_LLM_URL"
LLM_MODEL_ENV = "HOPFIELD_KB_LLM_MODEL"
SOURCES_ENV = "HOPFIELD_KB_SOURCES"          # JSON list of folders re-ingest may read
PASSWORD_ENV = "HOPFIELD_KB_UI_PASSWORD"     # what a user sets; never passed on to the app
SIGN_IN_ENV = "HOPFIELD_KB_UI_SIGN_IN"       # "scrypt$n$r$p$salt$hash" of the password, what the app checks
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sign_in_token(password: str) -> str:
    """A memory-hard hash of a password (scrypt, ui/app_signin.py), for the app to check sign-ins against without
    holding the password."""
    from ui.app_signin import password_token

    return password_token(password)


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
@click.option("--kb-dir", default="kb_data", show_default=True, type=click.Path(path_type=Path),
              help="Knowledge-base directory (created by the first upload if it does not exist).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any address but loopback needs a sign-in password "
                   f"(${PASSWORD_ENV} or --password-file).")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="File whose first line is the sign-in password.")
@click.option("--source", "sources", multiple=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="A folder the Knowledge base page may re-ingest (repeatable); no other folder can be.")
@click.option("--llm-url", default=None, help="OpenAI-compatible endpoint for generative answers (off by default).")
@click.option("--llm-model", default=None, help="Model name at --llm-url.")
def ui(kb_dir, port, host, password_file, sources, llm_url, llm_model):
    """Serve the app: ask questions with cited answers, manage documents, evaluate retrieval."""
    if bool(llm_url) != bool(llm_model):
        raise click.UsageError("--llm-url and --llm-model go together")
    password = (password_file.read_text(encoding="utf-8").splitlines() or [""])[0] if password_file else \
        os.environ.get(PASSWORD_ENV, "")
    if not is_loopback(host) and len(password) < 8:
        raise click.UsageError(f"serving on {host} makes the app reachable from other machines: set a sign-in "
                               f"password of 8+ characters in ${PASSWORD_ENV} or --password-file")
    kb_dir = kb_dir.resolve()
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env[KB_DIR_ENV] = str(kb_dir)
    env[SOURCES_ENV] = json.dumps([str(Path(s).resolve()) for s in sources])
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if password:
        env[SIGN_IN_ENV] = sign_in_token(password)
    if llm_url:
        env[LLM_URL_ENV], env[LLM_MODEL_ENV] = llm_url, llm_model
    click.echo(f"Serving the knowledge base at {kb_dir} on http://{host}:{port}"
               f"{' (sign-in required)' if password else ''} (Ctrl+C stops)", err=True)
    sys.exit(run_until_signalled(streamlit_command(kb_dir, port, host), env))
