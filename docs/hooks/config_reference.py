"""MkDocs hook: writes the configuration reference (config-reference.md) from the config specs at build time.

The page holds a placeholder line; this hook replaces it with one table per config section, every row
from `bpo.common.configlib.describe(RunConfig)` (dotted key, type, default, help): the same source as
`bpo train --help`, so the reference cannot drift from the code. A page without the placeholder fails
the build rather than being published as written by hand.
"""

from __future__ import annotations

import re

from mkdocs.exceptions import PluginError

PAGE = "config-reference.md"
PLACEHOLDER = "<!-- generated: configuration reference -->"

# Characters that Markdown (or a table row) would read as syntax, as numeric entities: a cell shows them
# as text, whatever the help says. `|` would split the cell; `*`, `_` emphasis; `<`, `&` HTML.
_SPECIAL = {c: f"&#{ord(c)};" for c in "&<>|*_`[]\\#"}


def escape(text: str) -> str:
    """`text` as literal table-cell content (every character Markdown could act on as an entity)."""
    return "".join(_SPECIAL.get(c, c) for c in text)


def code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def help_cell(text: str) -> str:
    """The help text escaped, its `backticked` words shown as code (an odd backtick stays literal)."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(code(p) if i % 2 else escape(p) for i, p in enumerate(parts))


def rows() -> list[tuple[str, str, str, str]]:
    from bpo.common.configlib import describe
    from bpo.loop.config import RunConfig

    return describe(RunConfig)


def reference(described: list[tuple[str, str, str, str]]) -> str:
    """One Markdown table per section (the top-level keys first), in the order the specs declare them."""
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    for row in described:
        key = row[0]
        sections.setdefault(key.split(".", 1)[0] if "." in key else "", []).append(row)
    out = [f"{len(described)} keys in {len(sections) - ('' in sections)} sections and at the top level.", ""]
    for section, section_rows in sections.items():
        out += [
            f"## {section or 'Top-level keys'}",
            "",
            "| key | type | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        out += [f"| {code(k)} | {code(t)} | {code(d)} | {help_cell(h)} |" for k, t, d, h in section_rows]
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if PLACEHOLDER not in markdown:
        raise PluginError(
            f"{PAGE}: the placeholder line {PLACEHOLDER!r} is missing; the reference is generated, not written by hand"
        )
    try:
        described = rows()
    except Exception as err:  # the build must fail, naming why, rather than publish an empty reference
        raise PluginError(f"{PAGE}: cannot read the configuration specs: {type(err).__name__}: {err}") from err
    return markdown.replace(PLACEHOLDER, reference(described))
