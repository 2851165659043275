"""ui: the interfaces on top of everything else: the `kb` command line and the Streamlit app.

Public surface:
    cli.main      the `kb` console script
"""
