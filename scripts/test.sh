#!/usr/bin/env bash
# Set up (virtualenv, package, test tools, Chromium for the browser tests, Tesseract for OCR) and run the whole test suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# OpenMP workers that spin while waiting crawl when the CPU is shared; let them sleep.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# constraints.txt: the versions tested together (floors in pyproject.toml are past known CVEs; this pins them).
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test]"
# A dependency audit against the pinned set, when pip-audit is installed. Never fatal here: without its advisory
# service (as on our machines, which reach only the package index) it marks every package "could not be audited"
# and still says "No known vulnerabilities found"; we say which it was (docs/security.md).
if "$VENV/bin/python" -m pip_audit --version >/dev/null 2>&1; then
    audit="$("$VENV/bin/python" -m pip_audit -r constraints.txt --progress-spinner off --timeout 20 2>&1 || true)"
    skipped="$(grep -c "could not be audited" <<<"$audit" || true)"
    if [ "${skipped:-0}" -gt 0 ]; then
        echo "pip-audit: $skipped packages could not be audited (advisory service unreachable?); no audit result" >&2
    else
        echo "$audit" >&2
    fi
fi
# The browser tests drive Debian's Chromium (Playwright cannot download its own browser here);
# scanned PDFs are read by Debian's Tesseract.
source scripts/system.sh
need chromium chromium "the browser tests will fail"
need tesseract tesseract-ocr "the OCR tests will fail"
install_needed
# Lint and type-check first (pyproject.toml [tool.ruff], [tool.mypy]): a minute, and a failure names file,
# line and rule.
"$VENV/bin/python" -m ruff check .
"$VENV/bin/python" -m ruff format --check .
"$VENV/bin/python" -m mypy
exec "$VENV/bin/python" -m pytest "$@"
