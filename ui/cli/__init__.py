"""ui.cli: the `kb` command line (console script `kb = ui.cli:main`; `python -m ui.cli` runs it too).

    commands.py    the group, its error handling, search / stats / check / history / reembed
    sync.py        `kb ingest` and `kb sync` (files, folders, exports, websites) and their options
    options.py     the options every command shares (--kb-dir, --json, the model names)
    ask.py, chat.py, evaluate.py, memory.py, insights.py, app_command.py   `kb ask`, `kb chat`, `kb eval`,
                   `kb memory`, `kb insights`, `kb ui`
    terminal.py    safe_text: what may be printed to a terminal
`kb serve` and `kb keys` come from api/ through the `hopfield_kb.commands` entry point (a plug-in contract:
this package never imports api/).
"""

from ui.cli.commands import main

__all__ = ["main"]
