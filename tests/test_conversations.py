"""Saved conversations on the kb floor: per session, renamed, deleted, kept across opens, purged after the retention."""

from __future__ import annotations

import sqlite3
import time

import pytest

from kb import ConversationConfig, ConversationStore, KBError, KnowledgeBase


def test_conversations_are_kept_per_session_in_order_and_survive_reopening(kb_copy):
    store = ConversationStore(kb_copy)
    a = store.create("session-a", "  Refund   question ")
    b = store.create("session-b")
    assert a.title == "Refund question" and b.title == "New conversation"
    store.add_turn(a.id, "first?", {"text": "one [1]", "sources": [{"n": 1}]})
    store.add_turn(a.id, "second?", {"text": "two"})
    again = ConversationStore(kb_copy)  # a new process after a reload sees the same rows
    assert [c.id for c in again.list("session-a")] == [a.id] and again.list("session-b")[0].id == b.id
    turns = again.turns(a.id)
    assert [(t.position, t.question) for t in turns] == [(0, "first?"), (1, "second?")]
    assert turns[0].answer == {"text": "one [1]", "sources": [{"n": 1}]}
    assert again.get(a.id).n_turns == 2
    # the KB itself is untouched by the new tables and still checks clean
    assert KnowledgeBase(kb_copy).check().ok


def test_rename_delete_and_clear_errors(kb_copy):
    store = ConversationStore(kb_copy)
    c = store.create("s")
    store.rename(c.id, "x" * 200)
    assert len(store.get(c.id).title) == 80
    with pytest.raises(KBError, match="cannot be empty"):
        store.rename(c.id, "   ")
    store.add_turn(c.id, "q", {})
    assert store.delete(c.id) and store.get(c.id) is None and store.turns(c.id) == []
    assert not store.delete(c.id)
    with pytest.raises(KBError, match="no longer exists"):
        store.add_turn(c.id, "q", {})
    with pytest.raises(KBError, match="no longer exists"):
        store.rename(c.id, "t")


def test_conversations_untouched_past_the_retention_are_deleted(kb_copy):
    store = ConversationStore(kb_copy, ConversationConfig(retention_days=30))
    old, fresh = store.create("s", "old"), store.create("s", "fresh")
    store.add_turn(old.id, "q", {"text": "a"})
    with sqlite3.connect(kb_copy / "kb.sqlite") as con:  # age one conversation by 31 days
        con.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time() - 31 * 86400, old.id))
    assert ConversationStore(kb_copy).list("s") == [store.get(fresh.id)]
    with sqlite3.connect(kb_copy / "kb.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM conversation_turns WHERE conversation_id = ?", (old.id,)).fetchone()[0] == 0
    keep_all = ConversationStore(kb_copy, ConversationConfig(retention_days=0))
    assert keep_all.purge(now=time.time() + 10**9) == 0


def test_a_missing_kb_is_a_clear_error(tmp_path):
    with pytest.raises(KBError, match="no knowledge base"):
        ConversationStore(tmp_path / "nowhere")
