import socket

import pytest

from ingest import tokens


def test_cl100k_loads_with_network_blocked(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache: nothing to fall back on
    tokens.cl100k.cache_clear()
    enc = tokens.cl100k()
    # Reference ids of cl100k_base for this text (as published by tiktoken).
    assert enc.encode_ordinary("hello world") == [15339, 1917]
    assert enc.decode(enc.encode_ordinary("Refund policy: 14 days.")) == "Refund policy: 14 days."
    assert list(tmp_path.iterdir()) == []


def test_encoding_file_hash_is_checked(monkeypatch):
    monkeypatch.setattr(tokens, "CL100K_SHA256", "0" * 64)
    tokens.cl100k.cache_clear()
    with pytest.raises(RuntimeError, match="SHA-256"):
        tokens.cl100k()
    monkeypatch.undo()
    tokens.cl100k.cache_clear()
    assert tokens.count_tokens("hello world") == 2
