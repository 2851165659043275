"""ui.app: the Streamlit app. `kb ui` runs `streamlit run ui/app/main.py` (see ui/launch.py).

    main.py        the entry script: sign-in, then the three pages in pages/ (Ask, Knowledge base, Evaluation)
    state.py       the KB, retriever and settings one server process shares; session.py the browser's session
    chat.py, turns.py, cite.py, render.py, conversations.py, diagnostics.py   the Ask page
    kb_admin.py, files.py    the Knowledge base page (uploads, re-ingest); evaluation.py the Evaluation page
    signin.py      sign-in and its rate limits; server.py runs the app in a child process (tests, benchmarks)
Module names here must not be top-level package names (kb, eval, ...): `streamlit run` puts this folder first
on sys.path.
"""
