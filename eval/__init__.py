"""eval: retrieval quality on labelled question sets (placeholder until the eval harness lands)."""
