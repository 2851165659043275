"""How `kb ui` starts the Streamlit app, and what it hands over: the one contract between ui/cli and ui/app.

The launcher (ui/cli/app_command.py) passes its options to the app process in environment variables and
never the sign-in password itself, only an scrypt hash the app checks sign-ins against (ui/app/signin.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from pathlib import Path

from ingest import MAX_UPLOAD_MB

# scrypt cost: ~50 ms and 16 MiB per sign-in check, far past what guessing over the network can afford.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


# How `kb ui` hands its options to the app process.
KB_DIR_ENV = "HOPFIELD_KB_DIR"
LLM_URL_ENV = "HOPFIELD_KB_LLM_URL"
LLM_MODEL_ENV = "HOPFIELD_KB_LLM_MODEL"
SOURCES_ENV = "HOPFIELD_KB_SOURCES"  # JSON list of folders re-ingest may read
PASSWORD_ENV = "HOPFIELD_KB_UI_PASSWORD"  # what a user sets; never passed on to the app
SIGN_IN_ENV = "HOPFIELD_KB_UI_SIGN_IN"  # "scrypt$n$r$p$salt$hash" of the password, what the app checks
APP = Path(__file__).resolve().parent / "app" / "main.py"  # the script `streamlit run` runs


def streamlit_command(kb_dir: Path, port: int, host: str) -> list[str]:
    """The `streamlit run` command line for the app on kb_dir."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.maxUploadSize",
        str(MAX_UPLOAD_MB),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        # Errors reach users as our own one-line messages; never as a traceback.
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--",
        "--kb-dir",
        str(kb_dir),
    ]


def password_token(password: str) -> str:
    """ "scrypt$n$r$p$salt$hash" of password: what the app checks sign-ins against, never the password itself."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 2**20)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(token: str, password: str) -> bool:
    """Constant-time check of password against a token from password_token (False for a malformed token)."""
    try:
        kind, n, r, p, salt, digest = token.split("$")
        if kind != "scrypt":
            return False
        given = hashlib.scrypt(
            password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 2**20
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, bytes.fromhex(digest))
