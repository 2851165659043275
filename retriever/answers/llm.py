"""Generative answers through an OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp server...).

Off by default (AnswerConfig.llm is None). The retrieved passages go into the prompt
as numbered sources; the reply's [n] markers are parsed back and validated: a marker
naming a source that was not retrieved is removed from the text and reported in the
answer's notes. Markers are renumbered in order of first use so that [n] always refers
to citations[n-1], and each citation quotes, verbatim, the best-scoring sentence of the
cited passage. Only the standard library is used for HTTP.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from retriever.answers.types import AnswerConfig, Citation, ScoredSentence
from retriever.results import Hit

SYSTEM_PROMPT = (
    "You answer questions for customer-support staff using only the numbered sources you are given. "
    "Answer in at most three short sentences. After every claim put the number of the source it comes from "
    "in square brackets, like [1] or [2]. Never cite a number that is not in the sources. "
    "If the sources do not contain the answer, reply exactly: Not found in the knowledge base."
)
MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


class LLMError(Exception):
    """The endpoint could not be reached or gave an unusable reply; str() says which and why."""


def build_messages(question: str, hits: tuple[Hit, ...]) -> list[dict[str, str]]:
    """Chat messages: the instructions, then the sources numbered from 1 and the question."""
    parts = []
    for n, hit in enumerate(hits, start=1):
        c = hit.chunk
        where = f", page {c.page}" if c.page is not None else (f", section {c.section}" if c.section else "")
        parts.append(f"[{n}] {c.doc_title} ({c.doc_name}{where})\n{c.text.strip()}")
    user = "Sources:\n\n" + "\n\n".join(parts) + f"\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def chat(config, messages: list[dict[str, str]]) -> str:
    """POST messages to {config.url}/chat/completions; returns the reply text. Raises LLMError."""
    url = config.url.rstrip("/") + "/chat/completions"
    body = json.dumps(
        {
            "model": config.model,
            "messages": messages,
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
            "stream": False,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise LLMError(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise LLMError(f"cannot reach {url} ({exc.reason})") from exc
    except (TimeoutError, OSError) as exc:
        raise LLMError(f"{url} did not answer within {config.timeout:.0f} s ({exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LLMError(f"{url} did not return JSON") from exc
    try:
        text = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"{url} returned no choices[0].message.content") from exc
    if not isinstance(text, str) or not text.strip():
        raise LLMError(f"{url} returned an empty answer")
    return text.strip()


CONDENSE_PROMPT = (
    "Rewrite the user's last message as one standalone question that keeps its subject from the "
    "conversation before it. Reply with the question only."
)
MAX_CONDENSED_CHARS = 2000


def condense(question: str, turns, config) -> str:
    """A standalone rewrite of question (a follow-up) given turns (retriever.conversation.Turn, oldest first),
    by the endpoint of config (an LLMConfig). Raises LLMError when it is unreachable or says nothing usable."""
    transcript = "\n".join(f"{t.role}: {t.content}" for t in turns)
    reply = chat(
        config,
        [
            {"role": "system", "content": CONDENSE_PROMPT},
            {"role": "user", "content": f"{transcript}\nuser: {question}\n\nStandalone question:"},
        ],
    )
    line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
    if not any(ch.isalnum() for ch in line):
        raise LLMError("the endpoint returned no question")
    return line[:MAX_CONDENSED_CHARS]


def validate_markers(text: str, n_sources: int) -> tuple[str, list[int], list[int]]:
    """(text renumbered, retrieved source numbers in order of first use, numbers dropped as not retrieved).

    Source k becomes marker [i] where i is its position in the returned list (1-based).
    """
    order: list[int] = []
    dropped: list[int] = []

    def replace(match: re.Match) -> str:
        kept = []
        for part in match.group(1).split(","):
            k = int(part)
            if 1 <= k <= n_sources:
                if k not in order:
                    order.append(k)
                kept.append(order.index(k) + 1)
            elif k not in dropped:
                dropped.append(k)
        return "".join(f"[{i}]" for i in dict.fromkeys(kept))

    cleaned = MARKER.sub(replace, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    return cleaned, order, dropped


def generate(
    question: str, hits: tuple[Hit, ...], scored: list[ScoredSentence], config: AnswerConfig
) -> tuple[str, tuple[Citation, ...], tuple[str, ...]]:
    """(answer text, citations, notes) from config.llm. Citations are empty when the model cited nothing valid."""
    reply = chat(config.llm, build_messages(question, hits))
    text, order, dropped = validate_markers(reply, len(hits))
    notes = []
    if dropped:
        notes.append(
            "dropped citation(s) "
            + ", ".join(f"[{k}]" for k in dropped)
            + f": the model cited sources that were not retrieved (only 1-{len(hits)} were)"
        )
    citations = []
    for n, k in enumerate(order, start=1):
        hit = hits[k - 1]
        c = hit.chunk
        best = next((s for s in scored if s.hit.chunk.id == c.id), None)
        # Quote the passage's best sentence; a passage without candidate sentences is quoted whole.
        start, end, score = (best.start, best.end, best.score) if best else (0, len(c.text), 0.0)
        citations.append(
            Citation(
                n=n,
                chunk_id=c.id,
                doc_source=c.doc_source,
                doc_name=c.doc_name,
                doc_title=c.doc_title,
                doc_version=c.doc_version,
                page=c.page,
                section=c.section,
                start=c.char_start + start,
                end=c.char_start + end,
                quote=c.text[start:end],
                score=score,
                chunk=c,
            )
        )
    if not citations:
        notes.append("the model's answer cited none of the retrieved sources")
    return text, tuple(citations), tuple(notes)
