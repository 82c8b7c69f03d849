"""retention: indexes that keep deleting old ledger and published outbox rows cheap

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-30 14:00:00

The retention worker (retention/) deletes, in small batches, the oldest ``processed_events`` rows
of each topic and the oldest published ``outbox_events`` rows. Each batch reads the front of one
of these indexes (the oldest rows, in order) instead of scanning the table, so a batch costs the
same on a table of a thousand rows as on one of a billion, and finding the oldest row for the
health check and the gauges is one index probe.

Indexes rather than time partitions: ``processed_events`` answers ``ON CONFLICT (event_id)`` and a
unique index on a partitioned table must contain the partition key, so partitioning by time
would lose the one guarantee the ledger exists for; the outbox's partial indexes would have to be
repeated per partition. A batched delete leaves dead tuples that autovacuum reclaims for reuse,
so the tables stop growing at about one window of rows.

Built ``CONCURRENTLY``: on the year-old database this revision is meant for, a plain
``CREATE INDEX`` would block ingestion and the relay for as long as the build takes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_processed_events_topic_processed_at",
            "processed_events",
            ["topic", "processed_at"],
            unique=False,
            postgresql_concurrently=True,
        )
        op.create_index(
            "ix_outbox_events_published_at",
            "outbox_events",
            ["published_at"],
            unique=False,
            postgresql_where="status = 'published'",
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_outbox_events_published_at",
            table_name="outbox_events",
            postgresql_where="status = 'published'",
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_processed_events_topic_processed_at",
            table_name="processed_events",
            postgresql_concurrently=True,
        )
