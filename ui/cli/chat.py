"""`kb chat`: a conversation in the terminal. Each question is answered with the turns before it
(follow-ups such as "and for annual plans?" keep their subject); /new starts a new topic; Ctrl+D leaves."""

from __future__ import annotations

import click

from kb import KBError, KnowledgeBase
from retriever import RETRIEVERS, AnswerConfig, LLMConfig, answer, log_answer, make_retriever
from ui.cli.ask import log_option, print_answer
from ui.cli.options import KB_DIR
from ui.cli.terminal import safe_text
from ui.questions import question_problem

HELP = "Ask a question. /new starts a new topic, /quit or Ctrl+D leaves."


@click.command("chat")
@KB_DIR
@click.option("--retriever", "retriever_name", type=click.Choice(RETRIEVERS), default="hopfield", show_default=True)
@click.option("-k", "--top-k", default=5, show_default=True, help="Passages each answer is drawn from.")
@click.option(
    "--llm-url",
    default=None,
    help="OpenAI-compatible endpoint: follow-ups are rewritten to stand alone and answers generated (off by default).",
)
@click.option("--llm-model", default=None, help="Model name at --llm-url.")
@log_option
def chat(kb_dir, retriever_name, top_k, llm_url, llm_model, log_it):
    """Chat with the KB: cited answers, each question read with the conversation before it."""
    if bool(llm_url) != bool(llm_model):
        raise click.UsageError("--llm-url and --llm-model go together")
    config = AnswerConfig(llm=LLMConfig(url=llm_url, model=llm_model) if llm_url else None)
    kb = KnowledgeBase(kb_dir)
    retriever = make_retriever(retriever_name, kb, top_k=top_k)
    history: list[dict[str, str]] = []
    click.echo(HELP)
    while True:
        try:
            question = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if question in ("/quit", "/exit"):
            return
        if question == "/new":
            history = []
            click.echo("(new topic: the next question is read on its own)")
            continue
        problem = question_problem(question) if question else HELP
        if problem:
            click.echo(safe_text(problem))
            continue
        try:
            ans = answer(question, retriever, config, history=history)
        except KBError as exc:
            click.echo(f"error: {safe_text(exc)}")
            continue
        if log_it:
            log_answer(kb, ans, retriever=retriever)
        print_answer(ans)
        click.echo()
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": ans.text}]
