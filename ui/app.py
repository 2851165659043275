"""The Streamlit app: `kb ui` runs `streamlit run ui/app.py -- --kb-dir DIR`.

Pages: Ask (chat with cited answers), Knowledge base (documents, uploads, re-ingest),
Evaluation (retrieval quality on a labelled set, feedback export).
"""

import os

# Before torch and faiss load: OpenMP threads that spin while waiting slow every query
# down badly when the CPU is shared with other work (measured 100x on a busy 2-core box).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="Knowledge base", page_icon=":material/menu_book:", layout="wide")

from ui.app_state import signed_in  # noqa: E402

if not signed_in():
    st.stop()
pages = [
    st.Page(str(HERE / "pages" / "chat.py"), title="Ask", icon=":material/chat:", default=True),
    st.Page(str(HERE / "pages" / "knowledge_base.py"), title="Knowledge base", icon=":material/folder_open:"),
    st.Page(str(HERE / "pages" / "evaluation.py"), title="Evaluation", icon=":material/analytics:"),
]
st.navigation(pages).run()
