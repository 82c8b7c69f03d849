"""dead letters: what operators did with each one (replayed, discarded)

Revision ID: 0010
Revises: 0005
Create Date: 2026-11-30 14:00:00

A record in the dead-letter topic cannot be changed or deleted, so what an operator did with a
letter is kept here, keyed by the letter's id (``kafka:<topic>:<partition>:<offset>`` for the
topic, ``db:<uuid>`` for the ``dead_letters`` table). A letter without a row is open. The table's
own ``replayed_at`` moves here, so both kinds of letter are answered the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_dispositions",
        sa.Column("letter_id", sa.String(length=400), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replay_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'replayed', 'discarded')",
            name=op.f("ck_dead_letter_dispositions_status"),
        ),
        sa.PrimaryKeyConstraint("letter_id", name=op.f("pk_dead_letter_dispositions")),
    )
    op.execute(
        "INSERT INTO dead_letter_dispositions (letter_id, status, replay_count, updated_at) "
        "SELECT 'db:' || id, 'replayed', 1, replayed_at FROM dead_letters "
        "WHERE replayed_at IS NOT NULL"
    )
    op.drop_column("dead_letters", "replayed_at")


def downgrade() -> None:
    op.add_column(
        "dead_letters", sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE dead_letters SET replayed_at = d.updated_at FROM dead_letter_dispositions d "
        "WHERE d.letter_id = 'db:' || dead_letters.id AND d.replay_count > 0"
    )
    op.drop_table("dead_letter_dispositions")
