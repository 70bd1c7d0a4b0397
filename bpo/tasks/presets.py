"""Prompt formats of the paper's tasks, for task files whose rows hold the raw fields.

    plain  {"prompt": ...}                                    the prompt as written
    tldr   {"subreddit", "title", "post"}                     Reddit TL;DR summarisation (Stiennon et al. 2020):
           "SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:"
    hh     {"query"} or a {"prompt"} that is already a dialogue   Anthropic helpful/harmless (Bai et al. 2022):
           "\n\nHuman: {query}\n\nAssistant:"

A task file with `layout: chosen` takes its prompts and references from preference rows instead
(bpo.tasks.files); `hh_dialogue` reads HH's raw text form there, "\n\nHuman: ...\n\nAssistant: ...".

These follow the formats commonly used with those data sets (and in the BPO paper's appendix table 3
as far as we can tell from it); check them against your copy of the data before comparing numbers.
The reference text is the row's `reference` field (for TL;DR files, `summary` is accepted too).
"""

from __future__ import annotations

import re
from typing import Callable

from bpo.common.jsonl import DataFileError
from bpo.data.chat import Message, split_response

FORMAT_FIELDS: dict[str, tuple[str, ...]] = {"plain": ("prompt",), "tldr": ("subreddit", "title", "post"), "hh": ()}


def _plain(row: dict) -> str:
    return row["prompt"]


def _tldr(row: dict) -> str:
    return f"SUBREDDIT: r/{row['subreddit']}\nTITLE: {row['title']}\nPOST: {row['post']}\nTL;DR:"


def _hh(row: dict) -> str:
    if "query" in row:
        return f"\n\nHuman: {row['query']}\n\nAssistant:"
    prompt = row["prompt"]  # already a dialogue ending with an assistant turn to fill
    return prompt if prompt.rstrip().endswith("Assistant:") else f"{prompt}\n\nAssistant:"


PROMPT_FORMATS: dict[str, Callable[[dict], str]] = {"plain": _plain, "tldr": _tldr, "hh": _hh}


def reference_of(row: dict) -> str:
    return row.get("reference") or row.get("summary") or ""


HH_TURN = re.compile(r"\n\n(Human|Assistant):")  # how HH's raw text starts each turn
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def is_hh_dialogue(text: str) -> bool:
    return text.startswith("\n\nHuman:")


def hh_dialogue(text: str, where: str) -> tuple[list[Message], str, str]:
    """HH's raw dialogue "\n\nHuman: ...\n\nAssistant: ..." split before its final assistant turn: (the turns
    before it as messages, the same as the text up to and including its "\n\nAssistant:", the final reply).
    A dialogue that does not end with one assistant turn is refused (bpo.data.chat.split_response); `where`
    is "FILE:LINE: FIELD"."""
    turns = list(HH_TURN.finditer(text))
    messages = [
        {"role": HH_ROLES[m[1]], "content": text[m.end() : nxt.start() if nxt else len(text)].strip()}
        for m, nxt in zip(turns, [*turns[1:], None])
    ]
    prompt, reply = split_response(messages, where)
    if not reply:
        raise DataFileError(f"{where}: the final assistant turn is empty (it is the reference)")
    return prompt, text[: turns[-1].end()], reply
