"""The auto-confirm policy (no servers): thresholds on the best confidence and on its lead."""

from __future__ import annotations

import pytest

from class_management_service.associations.auto_confirm import AutoConfirmPolicy
from class_management_service.settings import Settings

POLICY = AutoConfirmPolicy(min_confidence=0.9, min_margin=0.3)


@pytest.mark.parametrize(
    ("confidences", "confirms"),
    [
        ((0.95, 0.6), True),
        ((0.9, 0.6), True),  # both exactly at the thresholds (0.9 - 0.6 in floats is 0.30000...04)
        ((1.0, 0.7), True),  # 1.0 - 0.7 is 0.29999999999999993 in floats: still a 0.3 lead
        ((0.95,), True),  # no second: the margin is the best confidence itself
        ((0.89,), False),
        ((0.95, 0.7), False),  # certain, but not far enough ahead
        ((), False),
    ],
)
def test_policy(confidences: tuple[float, ...], confirms: bool) -> None:
    assert POLICY.confirms(confidences) is confirms


def test_off_unless_both_settings_are_set() -> None:
    assert AutoConfirmPolicy.from_settings(Settings()) is None
    on = Settings(auto_confirm_min_confidence=0.9, auto_confirm_min_margin=0.2)
    assert AutoConfirmPolicy.from_settings(on) == AutoConfirmPolicy(0.9, 0.2)
    with pytest.raises(ValueError, match="both"):
        AutoConfirmPolicy.from_settings(Settings(auto_confirm_min_confidence=0.9))
