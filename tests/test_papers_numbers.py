"""The papers' numbers printed beside ours (bpo.experiments.papers_numbers) are the papers' own: a sample of them
is found, in its context, in the plain-text copies of the papers in ../shared/papers/ (not in the repository; the
test is skipped where the folder is missing, as in CI)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bpo.experiments import papers_numbers as pn

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"
BPO_TEXT = PAPERS / "000_17e805bb176e7523.txt"
IOPO_TEXT = PAPERS / "003_cd555d8f0dea9dc6.txt"

pytestmark = pytest.mark.skipif(not BPO_TEXT.is_file() or not IOPO_TEXT.is_file(), reason="no ../shared/papers")


def flat(path: Path) -> str:
    """The text with LaTeX bold and spacing removed: '\\textbf{89.5} \\pm \\textbf{1.4}' -> '89.5 \\pm 1.4'."""
    text = re.sub(r"\\textbf\{([^}]*)\}", r"\1", path.read_text())
    return re.sub(r"\s+", " ", text)


def pm(mean: float, std: float) -> str:
    return f"{mean:.1f} \\pm {std:.1f}"


def test_bpo_table1_rows_are_in_the_paper():
    """Each Table 1 row prints its 4 cells (TL;DR, Helpfulness, Harmfulness, Overall) in a LaTeX array per
    method triple; every cell appears as 'mean \\pm std' in the text, and the SFT row reads 38.8 66.2 51.2 52.1."""
    text = flat(BPO_TEXT)
    assert "SFT 38.8 66.2 51.2 52.1" in text.replace("\t", " ")
    for cells in pn.BPO_TABLE1["rows"].values():
        for mean, std in cells:
            assert pm(mean, std) in text, (mean, std)


def test_bpo_table2_and_figure4_numbers_are_in_the_paper():
    text = flat(BPO_TEXT)
    for cells in pn.BPO_TABLE2["rows"].values():
        for mean, std in cells:
            assert f"${mean:.1f} \\pm {std:.1f}" in text or pm(mean, std) in text, (mean, std)
    for (a, sa), (b, sb) in pn.BPO_FIGURE4["rows"].values():
        assert f"from ${a:.1f}_{{\\pm {sa:.1f}}}\\%$ to ${b:.1f}_{{\\pm {sb:.1f}}}\\%$" in text
    assert "learning rate to be 5*e*-5" in text and "Gemma-2b" in text


def test_iopo_tables_are_in_the_paper():
    text = IOPO_TEXT.read_text()
    for (data, baseline), (ziya, ernie) in pn.IOPO_TABLE1["rows"].items():
        row = " vs. ".join(f"{v:g}%" for v in ernie)
        assert row in text, (data, baseline, row)
        if ziya:
            assert " vs. ".join(f"{v:g}%" for v in ziya) in text
    for name, (margin, accuracy, counts, human) in pn.IOPO_TABLE2["rows"].items():
        line = next(row for row in text.splitlines() if row.startswith(f"<i>{name}</i>\t"))
        cells = line.split("\t")[1:]
        assert cells[0] == ("-" if margin is None else f"{margin:g}"), line
        assert cells[1] == ("-" if accuracy is None else f"{accuracy:g}"), line
        assert cells[2] == ("-" if counts is None else " : ".join(map(str, counts))), line
        assert cells[3] == f"{human:g}", line
