"""Page script: the evaluation page (logic in ui.app_eval)."""

from ui.app_eval import render

render()
