"""Prompts as people have them: a plain text, or a conversation (a list of role/content messages).

A conversation is kept whole — system prompt, earlier user and assistant turns, the last user turn —
and reaches the model through the tokenizer's chat template (bpo.data.tokens.encode_prompt); a plain text
prompt is used as written, or wrapped as one user turn when the task asks for the chat template.

    Prompt = str | list[Message]          Message = {"role": ..., "content": ...}

Judges are functions of text, so they see a conversation as `prompt_text`: its turns, one per
paragraph, each led by its role ("system: ...\\n\\nuser: ...").

The checks here turn a row's value into a prompt or a response, or refuse it naming the file, line
and field (`where` = "FILE:LINE: FIELD"): a prompt conversation needs a user turn and must not end
with an assistant turn (the response comes next); a conversational response is one assistant message.
TRL's implicit-prompt layout (`chosen` and `rejected` full conversations, no `prompt`) is split at the
messages the two share (`split_shared_prompt`).
"""

from __future__ import annotations

from typing import Union

from bpo.common.jsonl import DataFileError

Message = dict[str, str]
Prompt = Union[str, list[Message]]


def is_conversation(prompt: Prompt) -> bool:
    return isinstance(prompt, list)


def prompt_messages(prompt: Prompt) -> list[Message]:
    """The prompt as a conversation: a plain text is one user turn."""
    return list(prompt) if is_conversation(prompt) else [{"role": "user", "content": prompt}]


def prompt_text(prompt: Prompt) -> str:
    """The prompt as one text, for judges and for comparing prompts: a plain text as it is, a
    conversation as its turns, one per paragraph, each led by its role."""
    if not is_conversation(prompt):
        return prompt
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def as_prompt(value, where: str) -> Prompt:
    """A row's (already shape-checked, bpo.common.jsonl) prompt value: a text, or a conversation that has a
    user turn and does not end with an assistant turn; messages keep only role and content."""
    if isinstance(value, str):
        return value
    messages = [{"role": m["role"], "content": m["content"]} for m in value]
    if not any(m["role"] == "user" for m in messages):
        raise DataFileError(f"{where}: no message with role 'user'")
    if messages[-1]["role"] == "assistant":
        raise DataFileError(
            f"{where}: the conversation ends with an assistant message; a prompt ends where the response begins"
        )
    return messages


def as_response(value, where: str) -> str:
    """A row's response value: a text, or one assistant message (TRL's conversational layout)."""
    if isinstance(value, str):
        return value
    if len(value) != 1 or value[0]["role"] != "assistant":
        roles = ", ".join(m["role"] for m in value)
        raise DataFileError(
            f"{where}: a conversational response is one assistant message, got {len(value)} message(s) ({roles})"
        )
    return value[0]["content"]


def split_shared_prompt(
    chosen: list[Message], rejected: list[Message], where: str
) -> tuple[list[Message], list[Message], list[Message]]:
    """TRL's implicit prompt: (prompt, chosen rest, rejected rest), the prompt being the messages the
    two conversations share from the start. `where` is "FILE:LINE"."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise DataFileError(
            f"{where}: prompt: missing field, and chosen and rejected share no first message to take it from (TRL's "
            "implicit prompt)"
        )
    if shared == len(chosen) == len(rejected):
        raise DataFileError(f"{where}: chosen: identical to rejected (a pair needs two different responses)")
    return chosen[:shared], chosen[shared:], rejected[shared:]
