#!/usr/bin/env python3
"""Rewrite the README's sweep summary from a sweep's summary.json (written by `bpo reproduce`).

Usage (from the project's root): tools/readme-summary.py docs/reproduce-full/summary.json
The README must hold the block once (its markers are in bpo.experiments.verdicts); tests/test_docs.py checks
that the block equals what this script writes from the file the block names.
"""

import json
import sys
from pathlib import Path

from bpo.experiments.verdicts import replace_readme_block

source = sys.argv[1]
readme = Path("README.md")
summary = json.loads(Path(source).read_text())
readme.write_text(replace_readme_block(readme.read_text(), summary, source))
print(f"README.md: summary of {source}")
