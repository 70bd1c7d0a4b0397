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
