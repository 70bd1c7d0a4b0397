"""bpo: online preference optimisation of language models under an annotation budget.

BPO (Xu et al. 2024): online DPO/IPO/SLiC whose reference model is the behavior policy that sampled
the pairs; IOPO (Wang et al. 2025); and the baselines they are compared with.

The Python API (bpo.api) is importable from here: bpo.train, bpo.dry_run, bpo.load_run, bpo.evaluate, bpo.compare,
bpo.export, bpo.reproduce, bpo.Run and bpo.RunConfig. They are loaded on first use, so that
`import bpo` (and `bpo --help`) stays fast: the API pulls in torch and transformers.
"""

__version__ = "0.1.0"

API = ("train", "dry_run", "load_run", "evaluate", "compare", "export", "Run", "make_config")
__all__ = [*API, "reproduce", "RunConfig", "__version__"]


def __getattr__(name: str):
    if name in API:
        from bpo import api

        return getattr(api, name)
    if name == "reproduce":  # the experiments sit on top of the API (bpo.experiments.reproduce)
        from bpo.experiments.papers import reproduce_papers

        return reproduce_papers
    if name == "RunConfig":
        from bpo.loop.config import RunConfig

        return RunConfig
    raise AttributeError(f"module 'bpo' has no attribute {name!r}")
