"""The documentation: the MkDocs site builds with --strict (a broken link or anchor fails it), the README
stays short and its links resolve, and the configuration reference is generated with every key."""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    assert importlib.util.find_spec("mkdocs"), "mkdocs is not installed: pip install 'bpo[docs]' (in .[test])"
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once from the repository's mkdocs.yml and docs/, with --strict."""
    out = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT / "mkdocs.yml", out)
    print(result.stderr)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return out


def test_the_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "reproduce-full" / "report" / "index.html").is_file()  # the existing reports are pages too


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; at most {README_MAX_LINES} (the rest goes to docs/)"
    )


def test_the_readme_links_resolve():
    """The README is not part of the site, so mkdocs does not check its links: every relative link names an
    existing file (anchors are left to the site's own check)."""
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [link.split("#")[0] for link in links if not re.match(r"[a-z]+://", link) and not link.startswith("#")]
    assert relative, "the README links into the docs"
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, missing


def test_the_configuration_reference_is_generated_with_every_key(site):
    from bpo.common.configlib import describe
    from bpo.loop.config import RunConfig

    page = html.unescape((site / "config-reference" / "index.html").read_text())
    assert "generated: configuration reference" not in page  # the placeholder was replaced
    keys = [key for key, *_ in describe(RunConfig)]
    missing = [key for key in keys if f"<code>{key}</code>" not in page]
    assert not missing, f"not in the generated reference: {missing}"
    assert page.count("<tr>") >= len(keys)  # one row per key (plus the header rows)


def test_the_strict_build_fails_on_a_broken_link(tmp_path):
    """The check can fail: the same site plus one page (in the nav, so only its links are wrong) that links
    to a missing page and to a missing anchor does not build."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["nav"].append({"Broken": "broken.md"})
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "docs" / "broken.md").write_text(
        "# Broken\n\nSee [a page that is not there](no-such-page.md) and [an anchor](methods.md#no-such-anchor).\n"
    )
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0, result.stderr
    assert "no-such-page.md" in result.stderr and "no-such-anchor" in result.stderr, result.stderr


def test_the_readme_summary_is_generated_from_the_sweep_it_names():
    """The README's verdict table equals what tools/readme-summary.py writes from the summary.json it names."""
    import json
    import re

    from bpo.experiments.verdicts import README_START, replace_readme_block

    text = (ROOT / "README.md").read_text()
    pattern = re.escape(README_START).replace(re.escape("{source}"), "(?P<source>[^ ]+)")
    (source,) = [m.group("source") for m in re.finditer(pattern, text)]  # the block is there, once
    summary = json.loads((ROOT / source).read_text())
    assert replace_readme_block(text, summary, source) == text
    assert "**reproduced**" in text or "**not reproduced**" in text or "**not resolved**" in text
