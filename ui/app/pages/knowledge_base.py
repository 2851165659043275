"""Page script: the knowledge-base page (logic in ui.app.kb_admin)."""

from ui.app.kb_admin import render

render()
