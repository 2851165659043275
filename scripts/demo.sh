#!/usr/bin/env bash
# Set up and run the main job on the embedded default: ingest the sample docs in data/docs
# into ./kb_data, then answer a sample question.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e .
"$VENV/bin/kb" sync data/docs --kb-dir kb_data
"$VENV/bin/kb" search "refnd polcy for anual plan cancelation" --kb-dir kb_data -k 3
