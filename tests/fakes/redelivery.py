"""A broker's answers about how long it keeps topics' records, without a broker."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from class_management_service.retention.horizon import NOTHING_TO_REDELIVER, Redelivery


class FakeRedelivery:
    """Satisfies ``retention.horizon.RedeliveryLookup``: ``answers`` per topic, ``default`` for
    the others (None: no answer); raises as an unreachable broker while ``unreachable``."""

    def __init__(
        self,
        answers: Mapping[str, Redelivery] | None = None,
        *,
        default: Redelivery | None = NOTHING_TO_REDELIVER,
    ) -> None:
        self.answers = dict(answers or {})
        self.default = default
        self.unreachable = False
        self.asked: list[list[str]] = []

    async def __call__(self, topics: Collection[str]) -> dict[str, Redelivery]:
        self.asked.append(sorted(topics))
        if self.unreachable:
            raise ConnectionError("the broker is unreachable")
        found = {topic: self.answers.get(topic, self.default) for topic in topics}
        return {topic: answer for topic, answer in found.items() if answer is not None}
