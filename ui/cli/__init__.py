"""ui.cli: the `kb` command line (console script `kb = ui.cli:main`; `python -m ui.cli` runs it too).

    commands.py    the group, its error handling, ingest / sync / search / stats / check / history / reembed
    ask.py, chat.py, evaluate.py, memory.py, app_command.py   `kb ask`, `kb chat`, `kb eval`, `kb memory`, `kb ui`
    terminal.py    safe_text: what may be printed to a terminal
`kb serve` and `kb keys` come from api/ through the `hopfield_kb.commands` entry point (a plug-in contract:
this package never imports api/).
"""

from ui.cli.commands import main

__all__ = ["main"]
