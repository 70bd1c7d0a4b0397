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
A whole conversation (the prompt's turns, then the answer: TRL's implicit-prompt layout, the IOPO data sets'
`chosen` and `rejected`, HH's `chosen`) is split before its final assistant message (`split_response`); of a
preference pair, the two prompts must be the same (`split_pair`).
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


def split_response(messages: list[Message], where: str) -> tuple[list[Message], str]:
    """A whole conversation as (prompt, response): the response is its final assistant message, the prompt
    every message before it. A conversation that does not end with one assistant message (it ends with
    another role, or with several assistant messages in a row) or has nothing before it is refused. `where`
    is "FILE:LINE: FIELD"."""
    trailing = 0
    while trailing < len(messages) and messages[-1 - trailing]["role"] == "assistant":
        trailing += 1
    if trailing == 0:
        raise DataFileError(
            f"{where}: the conversation ends with a {messages[-1]['role']!r} message, not the assistant's response"
        )
    if trailing > 1:
        raise DataFileError(
            f"{where}: the conversation ends with {trailing} assistant messages in a row; the response is one "
            "assistant message (merge them, or keep the last)"
        )
    if len(messages) == 1:
        raise DataFileError(
            f"{where}: one assistant message and nothing before it; a whole conversation holds the prompt's turns, "
            "then the response (or give the prompt in a 'prompt' field)"
        )
    return [{"role": m["role"], "content": m["content"]} for m in messages[:-1]], messages[-1]["content"]


def split_pair(chosen: list[Message], rejected: list[Message], where: str) -> tuple[list[Message], str, str]:
    """Two whole conversations as (prompt, chosen response, rejected response): each is split before its final
    assistant message (split_response), and the messages before it, the prompt, must be the same in both.
    `where` is "FILE:LINE"."""
    prompt, chosen_text = split_response(chosen, f"{where}: chosen")
    other, rejected_text = split_response(rejected, f"{where}: rejected")
    if other != prompt:
        k = next((i for i, (a, b) in enumerate(zip(prompt, other)) if a != b), min(len(prompt), len(other)))
        raise DataFileError(
            f"{where}: rejected[{k}]: differs from chosen[{k}]; the messages before the final assistant message (the "
            "prompt) must be the same in chosen and rejected"
        )
    return prompt, chosen_text, rejected_text
