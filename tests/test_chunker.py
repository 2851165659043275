import pytest

from ingest import Block, ChunkConfig, ParsedText, chunk, count_tokens
from kb import KBError


def _doc(text: str, blocks=None) -> ParsedText:
    return ParsedText(title="t", kind="text", text=text, blocks=tuple(blocks or [Block(0, len(text))]))


def test_spans_are_verbatim_and_sizes_respect_the_token_budget(rng):
    words = ["refund", "annual", "plan", "invoice", "credit", "policy", "support", "team"]
    paragraphs = [" ".join(rng.choice(words, size=rng.integers(5, 120))) + "." for _ in range(40)]
    text = "\n\n".join(paragraphs)
    config = ChunkConfig(size=64, overlap=16)
    chunks = chunk(_doc(text), config)
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.char_start : c.char_end] == c.text
        assert count_tokens(c.text) <= config.size + 2  # joins between units may add a token
    # Consecutive chunks overlap (the next starts before the previous ends) or abut.
    assert any(b.char_start < a.char_end for a, b in zip(chunks, chunks[1:]))
    covered = set()
    for c in chunks:
        covered.update(range(c.char_start, c.char_end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunks_never_cross_pages():
    text = "Page one text. " * 30 + "\n\n" + "Page two text. " * 30
    split = text.index("\n\n")
    blocks = [Block(0, split, page=1), Block(split + 2, len(text), page=2)]
    for c in chunk(_doc(text, blocks), ChunkConfig(size=40, overlap=8)):
        assert ("one" in c.text) != ("two" in c.text)
        assert c.page == (1 if "one" in c.text else 2)


def test_a_huge_single_line_falls_back_to_token_windows():
    text = "x" * 5 + " word" * 20000
    chunks = chunk(_doc(text), ChunkConfig(size=100, overlap=10))
    assert len(chunks) >= 200
    assert max(c.n_tokens for c in chunks) <= 100
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)


@pytest.mark.parametrize("size, overlap", [(8, 0), (100, 60), (100, -1)])
def test_bad_chunk_parameters_are_refused(size, overlap):
    with pytest.raises(KBError):
        ChunkConfig(size=size, overlap=overlap)
