"""`python -m ui.cli ARGS` runs `kb ARGS` (tests and benchmarks start the CLI this way)."""

from ui.cli.commands import main

main()
