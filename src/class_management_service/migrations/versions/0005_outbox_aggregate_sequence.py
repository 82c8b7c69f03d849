"""outbox: per-aggregate sequence in commit order

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 11:30:00

Every outbox row gets ``aggregate_sequence``: 1, 2, 3, ... per (aggregate_type, aggregate_id),
assigned by a BEFORE INSERT trigger (whatever inserts the row) from ``outbox_aggregate_sequences``
with an upsert, unless the writer reserved it already (the roster import's COPY reserves a range
per aggregate with the same upsert, outbox/writer.py). The upsert's row lock is held until the
writing transaction ends, so writers of one aggregate take their numbers one after the other and
commit in that order: sequence order is commit order, without gaps (a rolled-back writer gives
its numbers back). The relay publishes an aggregate's rows strictly in
sequence order (see outbox/relay.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEXT_SEQUENCE_FUNCTION = """
CREATE FUNCTION outbox_next_aggregate_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_aggregate_sequences AS s (aggregate_type, aggregate_id, last_sequence)
    VALUES (NEW.aggregate_type, NEW.aggregate_id, 1)
    ON CONFLICT (aggregate_type, aggregate_id)
    DO UPDATE SET last_sequence = s.last_sequence + 1
    RETURNING s.last_sequence INTO NEW.aggregate_sequence;
    RETURN NEW;
END;
$$
"""
NEXT_SEQUENCE_TRIGGER = """
CREATE TRIGGER outbox_events_aggregate_sequence BEFORE INSERT ON outbox_events
FOR EACH ROW WHEN (NEW.aggregate_sequence IS NULL)
EXECUTE FUNCTION outbox_next_aggregate_sequence()
"""


def upgrade() -> None:
    op.create_table(
        "outbox_aggregate_sequences",
        sa.Column("aggregate_type", sa.String(length=50), nullable=False),
        sa.Column("aggregate_id", sa.String(length=255), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "aggregate_type", "aggregate_id", name=op.f("pk_outbox_aggregate_sequences")
        ),
    )
    op.add_column("outbox_events", sa.Column("aggregate_sequence", sa.BigInteger()))
    # Rows written before this revision: numbered in their old (created_at) order.
    op.execute(
        """
        UPDATE outbox_events o SET aggregate_sequence = n.seq
        FROM (
            SELECT id, row_number() OVER (
                PARTITION BY aggregate_type, aggregate_id ORDER BY created_at, id
            ) AS seq
            FROM outbox_events
        ) n
        WHERE n.id = o.id
        """
    )
    op.execute(
        """
        INSERT INTO outbox_aggregate_sequences (aggregate_type, aggregate_id, last_sequence)
        SELECT aggregate_type, aggregate_id, max(aggregate_sequence)
        FROM outbox_events GROUP BY aggregate_type, aggregate_id
        """
    )
    op.alter_column("outbox_events", "aggregate_sequence", nullable=False)
    op.create_index(
        "ix_outbox_events_pending_aggregate",
        "outbox_events",
        ["aggregate_type", "aggregate_id", "aggregate_sequence"],
        unique=False,
        postgresql_where="status = 'pending'",
    )
    op.execute(NEXT_SEQUENCE_FUNCTION)
    op.execute(NEXT_SEQUENCE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_events_aggregate_sequence ON outbox_events")
    op.execute("DROP FUNCTION outbox_next_aggregate_sequence()")
    op.drop_index(
        "ix_outbox_events_pending_aggregate",
        table_name="outbox_events",
        postgresql_where="status = 'pending'",
    )
    op.drop_column("outbox_events", "aggregate_sequence")
    op.drop_table("outbox_aggregate_sequences")
