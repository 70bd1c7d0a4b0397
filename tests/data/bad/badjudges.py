"""Judges that break the judge contract (one finite number per response), for the bad-input corpus."""

import math

NOT_CALLABLE = 42


def returns_nan(prompts, responses):
    return [math.nan for _ in responses]


def returns_inf(prompts, responses):
    return [1.0] * (len(responses) - 1) + [math.inf]


def returns_strings(prompts, responses):
    return ["good" for _ in responses]


def returns_none(prompts, responses):
    return None


def returns_scalar(prompts, responses):
    return 0.5


def too_few(prompts, responses):
    return [0.0] * (len(responses) - 1)


def too_many(prompts, responses):
    return [0.0] * (len(responses) + 1)


def returns_bools(prompts, responses):
    return [True for _ in responses]


def raises(prompts, responses):
    return [1 / 0 for _ in responses]


def wrong_signature(prompt):
    return 1.0


def nan_after_probe(prompts, responses):
    """Fine on the start-up check (2 responses), NaN on the annotator's batches (more)."""
    return [0.0 if len(responses) <= 2 else math.nan for _ in responses]


def hangs(prompts, responses):
    """Never answers within a test's timeout (the thread left behind ends after a minute)."""
    import time

    time.sleep(60)
    return [0.0 for _ in responses]


def numpy_too_many(prompts, responses):
    """One score too many, as a NumPy array: the refusal names an ndarray, not a list."""
    import numpy as np

    return np.zeros(len(responses) + 1)
