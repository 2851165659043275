"""Browser-side helpers of the chat page: a citation marker [n] opens its source; a copy button per answer.

Both are small st.iframe HTML snippets (an iframe 1 px high, or one button). The citation
script reaches into the page (Streamlit's component iframes are same-origin): a click on an
answer's `a.kb-cite` opens the expander of that source (the st.container keyed with the
link's anchor id, so it has the CSS class st-key-<id>), scrolls it into view and flashes the
quoted sentence. Without JavaScript the link still jumps to the source list.
"""

from __future__ import annotations

import json

import streamlit as st

_CITE_SCRIPT = """
<script>
(function () {
  const doc = window.parent.document;
  const win = window.parent;
  if (!doc.getElementById("kb-cite-style")) {
    const style = doc.createElement("style");
    style.id = "kb-cite-style";
    style.textContent = "@keyframes kbFlash { from { outline: 3px solid #f4b400; outline-offset: 2px; } "
      + "to { outline: 3px solid transparent; outline-offset: 2px; } } "
      + "mark.kb-quote.kb-flash { animation: kbFlash 2.4s ease-out; }";
    doc.head.appendChild(style);
  }
  function openSource(id) {
    const box = doc.querySelector(".st-key-" + CSS.escape(id));
    if (!box) return false;
    const details = box.querySelector("details");
    if (details && !details.open) details.querySelector("summary").click();
    let tries = 0;
    (function settle() {
      const mark = box.querySelector("mark.kb-quote");
      if (!mark && tries++ < 60) { win.requestAnimationFrame(settle); return; }
      (mark || box).scrollIntoView({block: "center", behavior: "instant"});
      if (mark) { mark.classList.remove("kb-flash"); void mark.offsetWidth; mark.classList.add("kb-flash"); }
      box.setAttribute("data-kb-opened", "1");
    })();
    return true;
  }
  if (win.__kbCiteHandler) doc.removeEventListener("click", win.__kbCiteHandler, true);
  win.__kbCiteHandler = function (event) {
    const link = event.target.closest && event.target.closest("a.kb-cite");
    if (!link) return;
    const id = (link.getAttribute("href") || "").replace(/^#/, "");
    if (id && openSource(id)) { event.preventDefault(); win.history.replaceState(null, "", "#" + id); }
  };
  doc.addEventListener("click", win.__kbCiteHandler, true);
})();
</script>
"""


_ICON = '<svg width="13" height="13" viewBox="0 0 24 24" fill="currentColor" style="vertical-align:-2px"><path d="M16 1H4a2 2 0 0 0-2 2v14h2V3h12V1zm3 4H8a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h11a2 2 0 0 0 2-2V7a2 2 0 0 0-2-2zm0 16H8V7h11v14z"/></svg>'  # noqa: E501


def citation_script() -> None:
    """Make every [n] marker on the page open its source (call once per page run; draws nothing visible)."""
    st.iframe(_CITE_SCRIPT, height=1)


def copy_button(text: str, label: str = "Copy answer") -> None:
    """A button that copies text (the answer and its sources) to the clipboard; 34 px high."""
    # text comes from documents: as a JSON string with <, > and & escaped it is data inside the script, never markup.
    payload = json.dumps(text).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    st.iframe(
        f"""
<style>
  :root {{ color-scheme: light dark; }}
  body {{ margin: 0; font-family: "Source Sans Pro", "Source Sans 3", sans-serif; }}
  button {{ font: inherit; font-size: 0.85rem; padding: 4px 10px; border-radius: 6px; cursor: pointer;
           border: 1px solid rgba(128,128,128,0.45); background: transparent; color: #808495; }}
  button:hover {{ border-color: #ff4b4b; color: #ff4b4b; }}
</style>
<button id="copy" type="button" title="Copy the answer with its sources">{_ICON} {json.dumps(label)[1:-1]}</button>
<script>
  const text = {payload};
  const button = document.getElementById("copy");
  button.addEventListener("click", async () => {{
    try {{
      await navigator.clipboard.writeText(text);
    }} catch (e) {{
      const area = document.createElement("textarea");
      area.value = text; document.body.appendChild(area); area.select();
      document.execCommand("copy"); area.remove();
    }}
    button.textContent = "\\u2713 Copied";
    setTimeout(() => {{ button.innerHTML = {json.dumps(_ICON + " " + label)}; }}, 2000);
  }});
</script>""",
        height=34,
    )
