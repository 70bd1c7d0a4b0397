"""`bpo annotate RUN_DIR`: add a rater, export the labels, or serve the labelling page."""

from __future__ import annotations

from pathlib import Path

from bpo.annotate import DEFAULT_PORT
from bpo.annotate.phase import outcomes_of, training_pair
from bpo.annotate.store import LabelStore, StoreError
from bpo.data.prefdata import PreferenceRecord, write_preferences


def annotate(
    run_dir: str,
    port: int = DEFAULT_PORT,
    host: str | None = None,
    allow_hosts: tuple[str, ...] = (),
    add_rater: str | None = None,
    export: str | None = None,
) -> int:
    store = LabelStore.open(run_dir)
    if not 0 < port < 65536:
        raise StoreError(f"--port: {port} is not a TCP port")
    address = f"http://{host or '127.0.0.1'}:{port}/"
    if add_rater:
        token = store.add_rater(add_rater)
        print(f"rater {add_rater} added; their secret link (shown once; only a hash is kept):\n{address}?token={token}")
        return 0
    if export:
        n = export_preferences(store, Path(export))
        print(f"{n} decided pairs written to {export} (prompt/chosen/rejected, the layout TRL reads)")
        return 0
    if not store.raters():
        raise StoreError(
            f"{run_dir}: no raters yet; add one with bpo annotate {run_dir} --add-rater NAME (it prints the rater's "
            "link)"
        )
    try:
        from bpo.annotate.server import serve
    except ModuleNotFoundError as err:  # the web framework is an extra
        raise StoreError(
            f"bpo annotate serves its page with Starlette and uvicorn; {err.name} is not installed: pip install "
            "'bpo[annotate]'"
        ) from None

    print(f"serving the pairs of {run_dir} at {address} (each rater opens their own link; Ctrl-C stops)", flush=True)
    serve(store, host or "127.0.0.1", port, allow_hosts)
    return 0


def export_preferences(store: LabelStore, path: Path) -> int:
    """Every decided pair (labels combined by strict majority) in TRL's prompt/chosen/rejected layout.
    Ties, "both bad" and split votes have no chosen response, so they are left out (labels.sqlite keeps them)."""
    records = []
    for phase in sorted({c.phase for c in store.candidates()}):
        outcomes = outcomes_of(store, phase)
        for c in store.candidates(phase):
            if outcomes[c.id] in ("first", "second"):
                pair = training_pair(c, outcomes[c.id], seed=0)
                records.append(PreferenceRecord(pair.id, pair.prompt, pair.chosen, pair.rejected))
    write_preferences(path, records)
    return len(records)
