#!/usr/bin/env bash
# The main job, from scratch, in one command: set up .venv, sync the sample docs (data/docs)
# into ./kb_data, answer a sample question with citations, then serve the app on the sample KB.
# Usage: bash scripts/demo.sh            (then open http://127.0.0.1:8501; Ctrl+C stops)
#        PORT=8600 HOST=0.0.0.0 HOPFIELD_KB_UI_PASSWORD=... bash scripts/demo.sh   (other machines need a sign-in)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PORT="${PORT:-8501}"
HOST="${HOST:-127.0.0.1}"
# OpenMP workers that spin while waiting crawl when the CPU is shared; let them sleep.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[app,api]"  # the app and the HTTP API; the versions tested together
# Scanned PDFs are read by Debian's Tesseract (OCR); everything else works without it.
source scripts/system.sh
need tesseract tesseract-ocr "scanned PDF pages will be reported as needing OCR, not indexed"
install_needed
"$VENV/bin/kb" sync data/docs --kb-dir kb_data
"$VENV/bin/kb" search "refnd polcy for anual plan cancelation" --kb-dir kb_data -k 3
"$VENV/bin/kb" ask "refnd polcy for anual plan cancelation" --kb-dir kb_data
exec "$VENV/bin/kb" ui --kb-dir kb_data --port "$PORT" --host "$HOST" --source data/docs
