"""Evaluation: win rates against human references, head-to-head comparisons, held-out preference metrics."""
