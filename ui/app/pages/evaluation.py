"""Page script: the evaluation page (logic in ui.app.evaluation)."""

from ui.app.evaluation import render

render()
