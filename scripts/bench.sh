#!/usr/bin/env bash
# Set up (the package plus sentence-transformers, the ingest alternative) and run the benchmark suite.
# Usage: bash scripts/bench.sh [--quick] [--only query,index] [--workdir DIR]   (python -m bench.run --help)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
# OpenMP workers that spin while waiting crawl when the CPU is shared; let them sleep.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[bench,test]"
exec "$VENV/bin/python" -m bench.run "$@"
