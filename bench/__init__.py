"""bench: the performance suite (python -m bench). See bench/run.py."""
