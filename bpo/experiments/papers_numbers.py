"""The papers' published numbers and claims, printed beside ours in `bpo reproduce`'s report.

Copied by hand from the plain-text copies of the papers (BPO: Xu, Li, Wang, Li 2024; IOPO: Wang et al. 2025),
each with its source ("BPO paper, Table 1" ...); tests/test_papers_numbers.py checks a sample of them against
those text files when the files are present. Win rates are percentages as the papers print them; "±" is the
papers' std over 3 seeds. Nothing here is ours: our numbers are computed from the runs (bpo.experiments.sections).
"""

from __future__ import annotations

BPO_PAPER = (
    "Xu, Li, Wang, Li 2024, BPO: Supercharging Online Preference Learning by Adhering to the Proximity of Behavior LLM"
)
IOPO_PAPER = "Wang et al. 2025, Indirect Online Preference Optimization via Reinforcement Learning"

# ------------------------------------------------------------------------------------ BPO paper

BPO_TASKS = ("TL;DR", "Helpfulness", "Harmfulness", "Overall")

# Table 1 (section 5.1): win rate (%) against the reference text, mean ± std over 3 seeds, per loss and method.
BPO_TABLE1 = {
    "source": "BPO paper, Table 1 (section 5.1)",
    "what": "win rate (%) against the human reference text, mean ± std over 3 seeds",
    "tasks": BPO_TASKS,
    "SFT": (38.8, 66.2, 51.2, 52.1),
    "rows": {
        ("dpo", "offline_dpo"): ((72.0, 2.4), (82.2, 4.4), (77.5, 0.9), (77.2, 2.6)),
        ("dpo", "online_dpo"): ((77.2, 0.4), (90.6, 0.9), (96.9, 0.6), (88.3, 0.6)),
        ("dpo", "bpo"): ((89.5, 1.4), (93.5, 0.4), (97.7, 1.4), (93.6, 1.1)),
        ("ipo", "offline_dpo"): ((68.5, 5.3), (81.6, 10.6), (90.1, 4.6), (80.1, 6.8)),
        ("ipo", "online_dpo"): ((83.7, 0.6), (94.5, 1.2), (94.5, 2.7), (90.9, 1.5)),
        ("ipo", "bpo"): ((88.6, 1.7), (96.3, 0.5), (96.3, 0.8), (93.7, 1.0)),
        ("slic", "offline_dpo"): ((74.0, 0.3), (83.6, 1.5), (95.1, 0.9), (84.2, 0.9)),
        ("slic", "online_dpo"): ((82.6, 0.9), (90.3, 1.5), (91.8, 5.8), (88.2, 2.7)),
        ("slic", "bpo"): ((89.3, 0.7), (92.5, 1.4), (94.7, 1.9), (92.2, 1.3)),
    },
}

# Table 2 (section 5.1): head-to-head win rate (%) of on-policy BPO (DPO) against each baseline, 3 seeds.
BPO_TABLE2 = {
    "source": "BPO paper, Table 2 (section 5.1)",
    "what": "head-to-head win rate (%) of on-policy BPO (DPO) against the baseline, mean ± std over 3 seeds",
    "tasks": BPO_TASKS[:3],
    "rows": {
        "offline_dpo": ((75.9, 1.5), (78.0, 1.7), (99.3, 0.5)),
        "online_dpo": ((70.4, 1.5), (57.4, 5.1), (79.9, 9.9)),
    },
}

# Section 5.2 (the text beside Figure 4): offline DPO (F = 1) -> BPO (DPO) with F = 2, win rate (%) vs references.
BPO_FIGURE4 = {
    "source": "BPO paper, section 5.2 (Figure 4)",
    "what": "win rate (%) against the reference text, F = 1 (offline DPO) -> F = 2 (BPO (DPO)), mean ± std",
    "rows": {"TL;DR": ((72.0, 2.4), (80.2, 2.3)), "Helpfulness": ((82.2, 4.4), (89.1, 1.4))},
}

# Section 5 ("Implementation", "Dataset & Evaluation Metric") and section 5.2.
BPO_SETTING = {
    "source": "BPO paper, section 5 (Implementation; Dataset & Evaluation Metric) and section 5.2",
    "model": "Gemma-2b, an ensemble of 5 LoRA weights",
    "data": "Reddit TL;DR, Anthropic Helpfulness and Harmlessness (10K alignment prompts each)",
    "judge": "RM-deberta (OpenAssistant reward-model-deberta-v3-large-v2) as preference simulator and evaluator",
    "T": "625 (TL;DR), 150 (Helpfulness), 625 (Harmlessness); Figure 4: T = 600 (TL;DR), 150 (Helpfulness)",
    "B": "16 (TL;DR), 64 (Helpfulness), 16 (Harmlessness)",
    "learning rate": "5e-5",
    "beta": "0.1 for every method",
}

# ------------------------------------------------------------------------------------ IOPO paper

# Table 1 (section 6): IOPO vs each baseline, "win vs tie vs lose" (%), judged by Ziya and by ERNIE-3.5,
# Baichuan2-7B-chat, offline, sampling temperature 0.8. None: the paper prints "-".
IOPO_TABLE1 = {
    "source": "IOPO paper, Table 1 (section 6)",
    "what": "IOPO vs the baseline: win % vs tie % vs lose %, judged by Ziya / by ERNIE-3.5 (offline scenarios)",
    "rows": {
        ("safe world view", "SFT"): (None, (44.8, 21.6, 33.6)),
        ("safe world view", "DPO"): (None, (50.4, 21.2, 28.4)),
        ("safe world view", "HINGE"): (None, (49.2, 20.0, 30.8)),
        ("safe world view", "IPO"): (None, (44.8, 22.0, 33.2)),
        ("safe world view", "KTO-PAIR"): (None, (48.0, 21.6, 30.4)),
        ("distilabel-capybara-dpo", "SFT"): ((13, 75, 12), (65, 3, 32)),
        ("distilabel-capybara-dpo", "DPO"): ((12, 78, 10), (50, 8, 42)),
        ("distilabel-capybara-dpo", "RSO or HINGE"): ((10, 78, 12), (53, 18, 39)),
        ("distilabel-capybara-dpo", "IPO"): ((12, 76, 12), (51, 7, 42)),
        ("distilabel-capybara-dpo", "KTO-PAIR"): ((12, 78, 10), (48, 7, 46)),
        ("orpo-dpo-mix-40k", "SFT"): ((65, 0, 35), (48, 42, 10)),
        ("orpo-dpo-mix-40k", "DPO"): ((53, 0, 47), (50, 34, 16)),
        ("orpo-dpo-mix-40k", "HINGE"): ((48, 0, 52), (48, 36, 16)),
        ("orpo-dpo-mix-40k", "IPO"): ((54, 0, 46), (46, 32, 22)),
        ("orpo-dpo-mix-40k", "KTO-PAIR"): ((65, 0, 35), (45, 35, 20)),
    },
}

# Table 2 (section 6): online scenarios. Margin reward and pairwise accuracy on the safe world view test set;
# on 250 real-life online prompts, "win : tie : lose : bad case" counts by ERNIE-3.5 and the human mean score.
IOPO_TABLE2 = {
    "source": "IOPO paper, Table 2 (section 6)",
    "what": "margin reward, pairwise accuracy (safe world view test set); win:tie:lose:bad case by ERNIE-3.5 and "
    "the human mean score (250 online prompts)",
    "rows": {
        "SFT": (None, None, (13, 204, 10, 23), 2.156),
        "DPO": (23.75, 0.9286, (13, 203, 11, 23), 2.164),
        "Iter-DPO": (7.6875, 0.961, (13, 204, 11, 22), 2.152),
        "IOPO": (11.875, 0.9659, None, 2.176),
    },
}

IOPO_SETTING = {
    "source": "IOPO paper, section 6.1 and the captions of Tables 1-2",
    "model": "Baichuan2-7B (base / chat)",
    "data": "safe world view (44k), distilabel-capybara-dpo (7.56k), orpo-dpo-mix-40k (44.2k)",
    "judge": "Ziya and ERNIE-3.5 (Table 1); ERNIE-3.5 and human raters (Table 2)",
    "T": "not given",
    "B": "32",
    "learning rate": "printed as 2 * exp^{-7}",
    "beta": "0.1 (epsilon 0.3)",
    "method": "Table 1: offline scenarios (the IOPO method trained offline against offline baselines)",
}

# ------------------------------------------------------------------------------------ the claims we test

# Each claim: (key, quoted sentence, where). The report's verdict on a claim is computed by one rule
# (sections.verdict) from our paired two-level interval in the claim's direction (positive = the paper's).
CLAIMS = {
    "table1": (
        "Our on-policy BPO significantly outperforms its offline and on-policy DAP counterparts.",
        "BPO paper, Table 1 caption (section 5.1)",
    ),
    "figure4": (
        "even increasing F from 1 to 2 allows our BPO (DPO) to significantly outperform offline DPO",
        "BPO paper, section 5.2 (Figure 4)",
    ),
    "table2": (
        "Our on-policy BPO outperforms both offline and on-policy DPO by significant margins, with win rates "
        "substantially higher than 0.5 on all comparisons.",
        "BPO paper, Table 2 caption (section 5.1)",
    ),
    "figure5": (
        "on-policy DPO still under-performs our on-policy BPO",
        "BPO paper, Figure 5 caption (section 5.3)",
    ),
    "figure6": (
        "Increasing the number of LoRA weights to be optimized stabilizes the training of our BPO.",
        "BPO paper, Figure 6 caption (section 5.4); tested here as BPO's final strict win rate, 5 adapters − 1 (the "
        "curves' lowest late points, what 'stabilizes' is about, are in the table beside it, without an interval)",
    ),
    "figure6_online": (
        "optimizing more LoRA weights also leads to performance gain for the baseline online DPO",
        "BPO paper, Figure 6 caption (section 5.4); tested here as on-policy DPO's final strict win rate, 5 adapters "
        "− 1",
    ),
    "figure7": (
        "setting π_ref as the EMA of π_θ cannot stabilize the training for on-policy BPO (F = T)",
        "BPO paper, Figure 7 caption (section 5.4; also section 7); tested here as the final strict win rate, 5 "
        "adapters − the EMA reference with 1",
    ),
    "central": (
        "validating that our improvement comes from constraining the divergence between the learned LLM πθ and the "
        "behavior LLM πβ",
        "BPO paper, Figure 5 caption (section 5.3); tested here as BPO above on-policy DPO where the policy must "
        "move far from the SFT model (a longer horizon, a larger β)",
    ),
    "iopo": (
        "Our method outperforms the baselines with Baichuan2-7B-chat in offline scenarios.",
        "IOPO paper, Table 1 caption (section 6)",
    ),
    "iopo_online": (
        "Our method outperforms Iter-DPO in online scenarios.",
        "IOPO paper, Table 2 caption (section 6)",
    ),
}
