"""The Streamlit app: `kb ui` runs `streamlit run ui/app/main.py -- --kb-dir DIR`.

Pages: Ask (chat with cited answers), Knowledge base (documents, uploads, re-ingest),
Evaluation (retrieval quality on a labelled set, feedback export), Insights (gap topics, document health, replay).
"""

import os

# Before torch and faiss load: OpenMP threads that spin while waiting slow every query
# down badly when the CPU is shared with other work (measured 100x on a busy 2-core box).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent


def run() -> None:
    """Sign-in first; only then the heavy imports (torch, FAISS, the retrievers) and the pages."""
    st.set_page_config(page_title="Knowledge base", page_icon=":material/menu_book:", layout="wide")
    if "ui.app.state" in sys.modules:
        from ui.app.state import signed_in
    else:
        # The first page view after a start imports torch, FAISS and the retrievers (seconds, up to a
        # minute on a busy machine): say so instead of showing a blank page.
        with st.spinner("Loading the model and the knowledge base (first page view after a start)...", show_time=True):
            from ui.app.state import signed_in
    if not signed_in():
        st.stop()
    from ui.app.session import browser_session

    browser_session()  # the ?s= session id stays in the URL on every page, so a reload finds the conversations
    pages = [
        st.Page(str(HERE / "pages" / "chat.py"), title="Ask", icon=":material/chat:", default=True),
        st.Page(str(HERE / "pages" / "knowledge_base.py"), title="Knowledge base", icon=":material/folder_open:"),
        st.Page(str(HERE / "pages" / "evaluation.py"), title="Evaluation", icon=":material/analytics:"),
        st.Page(str(HERE / "pages" / "insights.py"), title="Insights", icon=":material/insights:"),
    ]
    st.navigation(pages).run()


run()
