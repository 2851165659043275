"""Page script: the insights page (logic in ui.app.insights_page and ui.app.insights_view)."""

from ui.app.insights_page import render

render()
