"""bpo: online preference optimisation of language models under an annotation budget.

BPO (Xu et al. 2024): online DPO/IPO/SLiC whose reference model is the behavior policy that sampled
the pairs; IOPO (Wang et al. 2025); and the baselines they are compared with.
"""

__version__ = "0.1.0"
