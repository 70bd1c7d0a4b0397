#!/bin/bash
# Run folders made by an older bpo resume and evaluate with this checkout's code, with the same results:
#     tools/compat-check.sh [OLD_COMMIT]     (default 7a57f58, the last commit before the layered layout)
# The old code trains run A uninterrupted and run B killed part-way (BPO: SIGKILL after step 3 of 6, the
# checkpoint at step 2; IOPO: after phase 1's pairs are stored); this checkout resumes B, and B must equal
# A (pairs, metrics, adapters byte for byte, eval.json); it also re-evaluates the old run A (eval.json equal).
# Needs the checkout's .venv (make venv). Writes under $TMPDIR (default /tmp).
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:-7a57f58}
PY=$HERE/.venv/bin/python
C=${TMPDIR:-/tmp}/bpo-compat; rm -rf "$C"; mkdir -p "$C"
git -C "$HERE" archive "$OLD" | tar -x -C "$C" --one-top-level=old
cd $C
PYTHONPATH=$HERE/tests $PY -c "import tinytask; from pathlib import Path; tinytask.write_task(Path('$C/task'))"
export BPO_CACHE=$C/cache OMP_NUM_THREADS=1
COMMON="task=$C/task/task.yaml policy.path=$C/task/model schedule.steps=6 schedule.phases=2 schedule.batch_size=4 lora.ensemble=2 sampling.max_new_tokens=8 eval.prompts=4 checkpoint.every=2"
IOPO="method=iopo iopo.rounds=2 iopo.protagonist_steps=2 iopo.adversary_steps=1"
old() { PYTHONPATH=$C/old:$C/old/tests $PY "$@"; }
new() { PYTHONPATH=$HERE:$HERE/tests $PY "$@"; }
old -m bpo.cli train $COMMON out=$C/bpoA --quiet > /dev/null 2>&1; echo "old bpo A: $?"
old $C/old/tests/killdriver.py training 3 train $COMMON out=$C/bpoB --quiet > /dev/null 2>&1; echo "old bpo B killed: $? (137 expected)"
new -m bpo.cli train --resume $C/bpoB --quiet > $C/bpoB.resume.log 2>&1; echo "new resume bpo B: $?"
old -m bpo.cli train $COMMON $IOPO out=$C/iopoA --quiet > /dev/null 2>&1; echo "old iopo A: $?"
old $C/old/tests/killdriver.py labels-stored 2 train $COMMON $IOPO out=$C/iopoB --quiet > /dev/null 2>&1; echo "old iopo B killed: $? (137 expected)"
new -m bpo.cli train --resume $C/iopoB --quiet > $C/iopoB.resume.log 2>&1; echo "new resume iopo B: $?"
cp $C/bpoA/eval.json $C/bpoA-eval-old.json
new -m bpo.cli eval $C/bpoA --quiet > /dev/null 2>&1; echo "new eval of old run A: $?"
C=$C $PY - <<'PYEOF'
import json
from pathlib import Path
import os
C = Path(os.environ["C"])
def rows(p): return [{k: v for k, v in json.loads(l).items() if k != "seconds"} for l in p.read_text().splitlines()]
for kind in ("bpo", "iopo"):
    a, b = C / f"{kind}A", C / f"{kind}B"
    same_eval = json.loads((a / "eval.json").read_text()) == json.loads((b / "eval.json").read_text())
    same_pairs = all(rows(x) == rows(b / "pairs" / x.name) for x in sorted((a / "pairs").iterdir()))
    same_metrics = rows(a / "metrics.jsonl") == rows(b / "metrics.jsonl")
    adapters = sorted(p.name for p in (b / "adapters").iterdir()) == sorted(p.name for p in (a / "adapters").iterdir())
    same_bytes = all((a / "adapters" / n / "adapter_model.safetensors").read_bytes() == (b / "adapters" / n / "adapter_model.safetensors").read_bytes() for n in [p.name for p in (a / "adapters").iterdir() if p.is_dir()])
    print(kind, "eval equal:", same_eval, "pairs equal:", same_pairs, "metrics equal:", same_metrics, "adapter names:", adapters, "adapter bytes equal:", same_bytes)
print("new eval == old eval of run A:", json.loads((C / "bpoA" / "eval.json").read_text()) == json.loads((C / "bpoA-eval-old.json").read_text()))
PYEOF
