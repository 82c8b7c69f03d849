"""Generated Kafka cluster ids are always accepted by ``kafka-storage format -t <id>``."""

from __future__ import annotations

import base64
from collections.abc import Iterator

from local_infra.kafka import new_cluster_id


def _decodes_to_16_bytes(cluster_id: str) -> bool:
    return len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_an_id_starting_with_a_dash_is_drawn_again() -> None:
    # 0xF8 encodes to '-' as the first base64 character: the storage tool reads it as an option.
    draws: Iterator[bytes] = iter([b"\xf8" + bytes(15), b"\x01" * 16])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")


def test_many_generated_ids_are_valid_storage_tool_arguments() -> None:
    # 1 in 64 random ids used to start with '-'; 20,000 draws would have hit ~300 of them.
    ids = [new_cluster_id() for _ in range(20_000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(len(cluster_id) == 22 and _decodes_to_16_bytes(cluster_id) for cluster_id in ids)
    assert len(set(ids)) == len(ids)
