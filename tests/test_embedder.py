"""The packaged embedding model: offline loading, vector shape and norm, batch-independent results.

One fresh fp32 Embedder is loaded (with the network blocked) for this module; the session's
default embedder is used where the default precision is what matters.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from kb import DEFAULT_MODEL, Embedder, EmbedderConfig, KBError
from kb.embedder import resolve_model_path
from kb.embedder_base import encode_by_length

TEXTS = [
    "refund window",
    "Annual plans cancelled after the 14-day window receive a prorated refund for whole unused months.",
    "a",
    "Service credits are 10 percent of the monthly fee when uptime falls below 99.9 percent. " * 4,
    "Password reset links expire after 30 minutes.",
    "TLY-403: the API key lacks the scope for this endpoint; create a key with the billing:write scope.",
    "Payouts are sent weekly on the Starter plan and daily on Business.",
]


@pytest.fixture(scope="module")
def offline_fp32():
    """(embedder, vectors of TEXTS, attempted connections): a fresh model loaded and used with sockets refused.

    batch_size=3 so that TEXTS spans several length-sorted batches.
    """
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if len(args) > 1 else args)
        raise OSError("network access is blocked in this test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        mp.delenv("TRANSFORMERS_OFFLINE", raising=False)
        emb = Embedder(EmbedderConfig(precision="fp32", batch_size=3))
        offline_flag = os.environ.get("HF_HUB_OFFLINE")
        vectors = emb.encode(TEXTS)
    return emb, vectors, attempts, offline_flag


def test_a_fresh_model_loads_and_encodes_with_the_network_blocked(offline_fp32):
    emb, vectors, attempts, offline_flag = offline_fp32
    assert attempts == [], f"the model tried to reach the network: {attempts}"
    assert offline_flag == "1", "Embedder must set HF_HUB_OFFLINE so transformers never tries a download"
    assert vectors.shape == (len(TEXTS), 384) and np.isfinite(vectors).all()


def test_vectors_are_float32_unit_rows_of_the_recorded_dimension(embedder):
    assert embedder.name == DEFAULT_MODEL == "all-MiniLM-L6-v2"
    assert embedder.dim == embedder.model.config.hidden_size == 384
    vectors = embedder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    empty = embedder.encode([])
    assert empty.shape == (0, embedder.dim) and empty.dtype == np.float32


def test_fp32_vectors_do_not_depend_on_batch_composition_or_order(offline_fp32):
    emb, together, _, _ = offline_fp32
    alone = np.stack([emb.encode([t])[0] for t in TEXTS])
    reversed_ = emb.encode(TEXTS[::-1])[::-1]
    padded_with_long = emb.encode(["filler words " * 150] + TEXTS + ["x"])[1:-1]
    duplicated = emb.encode(TEXTS + TEXTS)
    for name, got in (
        ("in one call", together),
        ("reversed", reversed_),
        ("among other texts", padded_with_long),
        ("first copy", duplicated[: len(TEXTS)]),
        ("second copy", duplicated[len(TEXTS) :]),
    ):
        diff = float(np.abs(got - alone).max())
        assert diff <= 1e-5, f"{name}: vectors differ from one-at-a-time encoding by {diff}"


def test_default_precision_stays_close_to_fp32(embedder, offline_fp32):
    # On CPUs with native bf16 the default runs the model in bf16 (about 2x faster); its vectors
    # move with batch composition at the 1e-3 level, which must not change what is retrieved.
    _, reference, _, _ = offline_fp32
    default = embedder.encode(TEXTS)
    alone = np.stack([embedder.encode([t])[0] for t in TEXTS])
    for got in (default, alone):
        cosines = np.sum(got * reference, axis=1)
        assert cosines.min() > 0.999, (embedder.precision, cosines)
    # Every neighbour order that fp32 decides by more than 1e-3 must be kept (texts 0 and 1 are
    # 1e-4 apart as neighbours of text 3: a tie that either precision may break either way).
    ref, got = reference @ reference.T, default @ default.T
    decided = (ref[:, :, None] - ref[:, None, :]) > 1e-3
    assert decided.sum() > 100 and np.all((got[:, :, None] - got[:, None, :])[decided] > 0)


def test_text_longer_than_max_tokens_is_truncated_without_error(offline_fp32):
    emb, _, _, _ = offline_fp32
    head = " ".join(f"clause {i} of the service agreement covers uptime credits." for i in range(60))
    assert emb.count_tokens(head) > 2 * emb.config.max_tokens
    # Everything past max_tokens is cut, so two texts that differ only there embed identically...
    a, b = emb.encode([head + " Refunds are paid in euros.", head + " Nothing about money at all."])
    assert float(np.abs(a - b).max()) <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(a), 1.0, atol=1e-5)
    # ...while a difference inside the window changes the vector.
    c = emb.encode(["Refunds are paid in euros. " + head])[0]
    assert float(np.abs(a - c).max()) > 1e-3


def test_unknown_model_name_is_refused_naming_the_choices():
    with pytest.raises(KBError, match="unknown embedding model 'no-such-model'.*all-MiniLM-L6-v2"):
        resolve_model_path("no-such-model")
    assert (resolve_model_path(DEFAULT_MODEL) / "config.json").is_file()


def test_batches_follow_the_lengths_given_and_the_output_keeps_the_input_order():
    texts = ["a long text in few words", "b", "cc", "ddd"]
    batches: list[list[str]] = []

    def encode_batch(batch: list[str]) -> np.ndarray:
        batches.append(batch)
        return np.array([[float(len(t))] for t in batch], dtype=np.float32)

    # In wordpieces the long text is the shortest: it shares the last batch with "ddd".
    out = encode_by_length(texts, 1, 2, encode_batch, lengths=[1, 9, 8, 2])
    assert batches == [["b", "cc"], ["ddd", "a long text in few words"]]
    assert out[:, 0].tolist() == [24, 1, 2, 3]
    batches.clear()
    encode_by_length(texts, 1, 2, encode_batch)  # without lengths, by characters
    assert batches == [["a long text in few words", "ddd"], ["cc", "b"]]
