"""association filenames of any length; the causing event's correlation id and trace context

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 11:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The platform's models put no bound on a filename; a bounded column dead-lettered batches.
    op.alter_column(
        "essay_student_associations",
        "filename",
        existing_type=sa.String(length=500),
        type_=sa.Text(),
        existing_nullable=True,
    )
    # What the timeout's StudentAssociationsConfirmedV1 carries on: the NLP event's ids.
    op.add_column(
        "essay_student_associations", sa.Column("correlation_id", sa.Uuid(), nullable=True)
    )
    op.add_column(
        "essay_student_associations",
        sa.Column("trace_context", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("essay_student_associations", "trace_context")
    op.drop_column("essay_student_associations", "correlation_id")
    op.alter_column(
        "essay_student_associations",
        "filename",
        existing_type=sa.Text(),
        type_=sa.String(length=500),
        existing_nullable=True,
        postgresql_using="left(filename, 500)",
    )
