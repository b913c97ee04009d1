"""Evidence that a success rate is below its target: an exact one-sided binomial test.

`n` commands with `k` failures show the true success rate is below `target`
with confidence `c` when so many failures would be rare at the target: the
probability of `k` or more failures out of `n`, at a failure rate of exactly
1 - target, is below 1 - c. This is the Clopper-Pearson (exact) upper bound of
the success rate lying below the target, without a normal approximation, which
misjudges exactly the small samples and rates near 100 % that matter here.

The tail is summed from `k` upwards and stops as soon as the verdict is known
(the partial sum reaches 1 - c, or a geometric bound on the rest keeps it below):
the work is a few terms around the decision, not `n`.
"""

from __future__ import annotations

import math

# Overall command success: 95 % confidence, as the SRE workbook's alerting chapter.
FLEET_CONFIDENCE = 0.95
# Each entity: a farm has many, and at 95 % one healthy entity in twenty would be
# named by chance sooner or later; at 99.9 % a healthy entity practically never is.
ENTITY_CONFIDENCE = 0.999


def below_target(n: int, k: int, target_pct: float, confidence: float) -> bool:
    """Return whether `k` failures in `n` tries show a success rate below `target_pct`."""
    if n <= 0 or k <= 0:
        return False
    budget = 1.0 - target_pct / 100.0
    if budget <= 0.0:
        return True  # a target of 100 %: any failure misses it
    if k <= n * budget:
        return False  # no more failures than the target allows: no evidence against it
    return _upper_tail_below(n, k, budget, 1.0 - confidence)


def _upper_tail_below(n: int, k: int, p: float, alpha: float) -> bool:
    """Return whether P(X >= k) < alpha for X ~ Binomial(n, p), with k > n * p."""
    log_term = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    term = math.exp(log_term)
    odds = p / (1.0 - p)
    total = 0.0
    for i in range(k, n + 1):
        total += term
        if total >= alpha:
            return False
        # Past the mean each term shrinks by at least this ratio: the rest is a geometric tail.
        ratio = (n - i) / (i + 1) * odds
        if ratio < 1.0 and total + term * ratio / (1.0 - ratio) < alpha:
            return True
        term *= ratio
    return True
