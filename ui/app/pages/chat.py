"""Page script: the chat page (logic in ui.app.chat)."""

from ui.app.chat import render

render()
