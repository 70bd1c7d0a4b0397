"""Prompt formats of the paper's tasks, for task files whose rows hold the raw fields.

    plain  {"prompt": ...}                                    the prompt as written
    tldr   {"subreddit", "title", "post"}                     Reddit TL;DR summarisation (Stiennon et al. 2020):
           "SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:"
    hh     {"query"} or a {"prompt"} that is already a dialogue   Anthropic helpful/harmless (Bai et al. 2022):
           "\n\nHuman: {query}\n\nAssistant:"

These follow the formats commonly used with those data sets (and in the BPO paper's appendix table 3
as far as we can tell from it); check them against your copy of the data before comparing numbers.
The reference text is the row's `reference` field (for TL;DR files, `summary` is accepted too).
"""

from __future__ import annotations

from typing import Callable

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
