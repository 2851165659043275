"""Page script: the knowledge-base page (logic in ui.app_kb)."""

from ui.app_kb import render

render()
