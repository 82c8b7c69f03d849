"""The auto-confirm policy: which ingested essays need no teacher. Pure: no I/O.

Record-linkage practice: above a confidence threshold, and clearly ahead of the runner-up, a
match is linked without clerical review. Off unless both ``AUTO_CONFIRM_MIN_CONFIDENCE`` and
``AUTO_CONFIRM_MIN_MARGIN`` are set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from class_management_service.settings import Settings

# Confidences are decimals sent as binary floats: 0.7 - 0.4 is 0.29999999999999993, which must
# still clear a margin of 0.3. Nine decimals are far below any meaningful confidence step.
_MARGIN_DECIMALS = 9


@dataclass(frozen=True, slots=True)
class AutoConfirmPolicy:
    min_confidence: float
    min_margin: float

    @classmethod
    def from_settings(cls, settings: Settings) -> AutoConfirmPolicy | None:
        """The configured policy, or None when it is off (the platform's behaviour)."""
        confidence = settings.auto_confirm_min_confidence
        margin = settings.auto_confirm_min_margin
        if confidence is None and margin is None:
            return None
        if confidence is None or margin is None:
            # Half a policy is a configuration mistake: refuse to start rather than guess.
            raise ValueError(
                "set both AUTO_CONFIRM_MIN_CONFIDENCE and AUTO_CONFIRM_MIN_MARGIN, or neither"
            )
        return cls(confidence, margin)

    def confirms(self, confidences: Sequence[float]) -> bool:
        """True when the best of an essay's ranked confidences (best first) is certain enough
        and far enough ahead of the second best (with no second, the margin is the best
        confidence itself)."""
        if not confidences:
            return False
        best = confidences[0]
        second = confidences[1] if len(confidences) > 1 else 0.0
        return best >= self.min_confidence and (
            round(best - second, _MARGIN_DECIMALS) >= self.min_margin
        )
