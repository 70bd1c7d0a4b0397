"""The label store keeps a conversation prompt whole; the page and the other tools' files show it as text."""

import json

from bpo.annotate.external import write_exports
from bpo.annotate.store import LabelStore
from bpo.data.records import Response

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "and <b>now</b>?"},
]


def stored_round(tmp_path):
    store = LabelStore.create(tmp_path / "labels.sqlite", overlap=1)
    a, b = Response("yes", [5, 2], -1.5), Response("no", [6, 2], -2.25)
    store.add_round(
        0, 0, [("plain prompt", [1, 3], (a, b)), (CONVERSATION, [1, 4, 7], (b, a))], prompts=2, draws=2, identical=0
    )
    return store


def test_conversation_and_text_prompts_come_back_as_stored(tmp_path):
    plain, conversation = stored_round(tmp_path).candidates(0)
    assert plain.prompt == "plain prompt" and plain.prompt_ids == [1, 3]
    assert conversation.prompt == CONVERSATION  # the messages, not their text: a resumed phase trains on them
    assert conversation.prompt_ids == [1, 4, 7] and conversation.first == Response("no", [6, 2], -2.25)


def test_other_tools_get_the_conversation_as_text(tmp_path):
    """bpo.data.chat.prompt_text: one paragraph per turn, led by its role."""
    write_exports(stored_round(tmp_path), tmp_path, 0)
    rows = [json.loads(line) for line in (tmp_path / "external" / "phase-000-round-0.jsonl").read_text().splitlines()]
    assert rows[0]["prompt"] == "plain prompt"
    assert rows[1]["prompt"] == "system: Answer briefly.\n\nuser: hi\n\nassistant: hello\n\nuser: and <b>now</b>?"


def test_raters_asking_at_once_are_shown_different_pairs(tmp_path):
    """Pairs 0 and 1, overlap 1. ann is shown pair 0; bob, asking before ann answers, is shown pair 1 (before:
    pair 0 too, the lowest index with no label); cy, with both in view, is still given one (pair 0, the
    first in order), so a rater who walked away holds nothing back. Once ann labels pair 0, ann is given
    pair 1 though bob has it in view (nothing else is left); once bob labels it, nobody is given anything."""
    store = stored_round(tmp_path)
    ids = [c.id for c in store.candidates(0)]
    assert store.next_for("ann").id == ids[0]
    assert store.next_for("bob").id == ids[1]
    assert store.next_for("cy").id == ids[0]
    store.add_label(ids[0], "ann", "first", "n1")
    assert store.next_for("ann").id == ids[1]  # still short of a label: in bob's (and only bob's) view
    store.add_label(ids[1], "bob", "second", "n2")
    assert store.next_for("ann") is None and store.next_for("cy") is None


def test_a_store_made_before_views_were_recorded_opens(tmp_path):
    import sqlite3

    store = stored_round(tmp_path)
    with sqlite3.connect(store.path) as con:
        con.execute("DROP TABLE shown")
    assert LabelStore.open(tmp_path).next_for("ann").id == store.candidates(0)[0].id
