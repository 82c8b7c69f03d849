"""The bulk outbox writer's COPY columns are the fields of its record type; this checks that
they are ``outbox_events`` columns and that the rest have defaults (no database needed)."""

from __future__ import annotations

from class_management_service.outbox.models import OutboxEvent
from class_management_service.outbox.writer import OutboxCopyRecord


def test_every_copied_field_is_an_outbox_column() -> None:
    columns = OutboxEvent.__table__.c
    assert set(OutboxCopyRecord._fields) | {"aggregate_sequence"} <= set(columns.keys())
    for column in columns:
        if column.name not in OutboxCopyRecord._fields and column.name != "aggregate_sequence":
            assert column.nullable or column.server_default is not None, column.name
