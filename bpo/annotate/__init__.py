"""Human annotation: people label a phase's pairs, in bpo's own web page or in another tool.

store.py      labels.sqlite in the run folder: pairs awaiting labels, raters, labels, undo history
phase.py      a training phase labelled by people (annotator.kind=human or external), across restarts
server.py     `bpo annotate RUN_DIR`: the labelling page and its API (Starlette + uvicorn)
agreement.py  how labels combine, Cohen's kappa, Krippendorff's alpha (pure functions)
external.py   files for Argilla / Label Studio, and reading their exports back
status.py     what `bpo status RUN_DIR` says about labels and agreement
"""

HUMAN_KINDS = ("human", "external")  # annotator.kind values whose labels come from people
DEFAULT_PORT = 8765
EXIT_AWAITING_LABELS = 4  # `bpo train` stopped because a phase waits for labels (not an error)
