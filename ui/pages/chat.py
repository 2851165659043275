"""Page script: the chat page (logic in ui.app_chat)."""

from ui.app_chat import render

render()
