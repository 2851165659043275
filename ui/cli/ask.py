"""`kb ask QUESTION`: the answer with [n] markers, then the numbered sources (or, abstaining, the closest passages)."""

from __future__ import annotations

import json

import click

from kb import KnowledgeBase
from retriever import (
    DEFAULT_CANDIDATES,
    RETRIEVERS,
    Answer,
    AnswerConfig,
    HopfieldConfig,
    LLMConfig,
    answer,
    answer_dict,
    log_answer,
    make_retriever,
)
from ui.cli.options import JSON, KB_DIR
from ui.cli.terminal import safe_text

# `kb ask` and `kb chat` take the same opt-in flag: the app and the API always log.
log_option = click.option(
    "--log",
    "log_it",
    is_flag=True,
    help="Keep each question (redacted), its outcome and citations in the KB's question log, for `kb insights`.",
)


@click.command("ask")
@click.argument("question")
@KB_DIR
@JSON
@click.option("--retriever", "retriever_name", type=click.Choice(RETRIEVERS), default="hopfield", show_default=True)
@click.option("-k", "--top-k", default=5, show_default=True, help="Passages the answer is drawn from.")
@click.option("--beta", default=HopfieldConfig().beta, show_default=True, help="Hopfield inverse temperature.")
@click.option("--candidates", "-K", default=DEFAULT_CANDIDATES, show_default=True, help="First-stage candidates.")
@click.option(
    "--min-evidence",
    type=float,
    default=None,
    help="Abstain below this evidence (default: 0.48 for the evidence score; with --cross-abstention, "
    "P(answerable) at the threshold python -m eval.second_reader --fit chose).",
)
@click.option(
    "--cross-abstention",
    is_flag=True,
    help="Abstain by P(answerable) from the cross-encoder too (ms-marco-MiniLM-L-12-v2): more often on "
    "out-of-scope questions, and on loosely worded answerable ones as well.",
)
@click.option(
    "--llm-url",
    default=None,
    help="OpenAI-compatible endpoint for generative answers, e.g. http://localhost:11434/v1 (off by default).",
)
@click.option("--llm-model", default=None, help="Model name at --llm-url.")
@log_option
def ask(
    question,
    kb_dir,
    as_json,
    retriever_name,
    top_k,
    beta,
    candidates,
    min_evidence,
    cross_abstention,
    llm_url,
    llm_model,
    log_it,
):
    """Answer QUESTION from the KB with numbered citations, or say it is not in the KB."""
    if bool(llm_url) != bool(llm_model):
        raise click.UsageError("--llm-url and --llm-model go together")
    kb = KnowledgeBase(kb_dir)
    retriever = make_retriever(retriever_name, kb, top_k=top_k, candidates=candidates, hopfield=HopfieldConfig(beta=beta))
    llm = LLMConfig(url=llm_url, model=llm_model) if llm_url else None
    ans = answer(question, retriever, AnswerConfig(min_evidence=min_evidence, cross_abstention=cross_abstention, llm=llm))
    if log_it:
        log_answer(kb, ans, retriever=retriever)
    if as_json:
        # The API's answer JSON, with what only the KB's owner reads (mode, retriever, signals, diagnostics, scores).
        click.echo(json.dumps(answer_dict(ans, details=True), indent=2))
        return
    print_answer(ans)


def print_answer(ans: Answer) -> None:
    """The answer, then its numbered sources with the quotes (or, abstaining, the closest passages)."""
    click.echo(safe_text(ans.text))
    for note in ans.notes:
        click.echo(f"note: {safe_text(note)}", err=True)
    if ans.abstained:
        click.echo(f"\n(evidence {ans.evidence:.2f} < {ans.threshold:.2f}) Closest passages:")
        for h in ans.closest:
            chunk = h.chunk
            snippet = " ".join(chunk.text.split())
            click.echo(safe_text(f"  - {chunk.doc_title} ({chunk.doc_name} v{chunk.doc_version}, {chunk.where})"))
            click.echo(f"    {safe_text(snippet[:240])}{'...' if len(snippet) > 240 else ''}")
        return
    click.echo("\nSources:")
    for c in ans.citations:
        click.echo(
            safe_text(
                f"  [{c.n}] {c.doc_title} ({c.doc_name} v{c.doc_version}, {c.where}, "
                f"chars {c.start}-{c.end}, chunk {c.chunk_id})"
            )
        )
        if c.chunk.doc_url:
            click.echo(safe_text(f"      {c.chunk.doc_url}"))
        click.echo(f'      "{safe_text(" ".join(c.quote.split()))}"')
