"""The one backoff convention of the service's retry loops (consumer, dead letters, workers).

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the delay is drawn
uniformly between zero and the capped exponential, so replicas that failed together (a database
restart) do not retry in lockstep.
"""

from __future__ import annotations

import random

# 2**30 times any sensible base is far beyond any cap; bounding the exponent avoids overflow.
_MAX_EXPONENT = 30


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number ``attempt`` (1-based):
    uniform in [0, min(cap, base * 2**(attempt-1))]."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return random.uniform(0.0, min(cap, base * 2**exponent))
