"""data: the sample knowledge base (a fictional company's support docs) and its question set."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SAMPLE_DOCS = DATA_DIR / "docs"
SAMPLE_QUESTIONS = DATA_DIR / "questions.jsonl"

__all__ = ["DATA_DIR", "SAMPLE_DOCS", "SAMPLE_QUESTIONS"]
