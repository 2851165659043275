"""ui: the people's interfaces, on top of everything else.

    ui.cli         the `kb` command line (ui/cli/): cli.main is the console script
    ui.app         the Streamlit app (ui/app/), started by `kb ui`
    ui.launch      how `kb ui` starts the app and what it hands over (environment, the sign-in hash)
    ui.questions   what a typed question may be: shared by `kb chat` and the app
The CLI never imports the app's modules, nor the app the CLI's.
"""
