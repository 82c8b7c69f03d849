"""association alternatives (every valid suggestion) and the decision history

Revision ID: 0009
Revises: 0005
Create Date: 2026-11-30 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METHODS = (
    "'ingested', 'auto', 'teacher_confirm', 'teacher_reject', 'teacher_reassign', "
    "'timeout', 'erasure'"
)


def upgrade() -> None:
    op.add_column(
        "essay_student_associations",
        sa.Column(
            "suggestions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
    )
    # Rows stored before this revision kept only their best suggestion: that is their ranking.
    op.execute(
        """
        UPDATE essay_student_associations
        SET suggestions = jsonb_build_array(jsonb_build_object(
            'student_id', student_id,
            'confidence_score', confidence_score,
            'match_reasons', match_reasons
        ))
        WHERE status = 'pending_validation' AND confidence_score IS NOT NULL
        """
    )
    op.create_table(
        "association_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("association_id", sa.Uuid(), nullable=False),
        sa.Column("essay_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("from_student_id", sa.Uuid(), nullable=True),
        sa.Column("to_student_id", sa.Uuid(), nullable=True),
        sa.Column("from_status", sa.Text(), nullable=True),
        sa.Column("to_status", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(f"method IN ({_METHODS})", name=op.f("ck_association_history_method")),
        sa.ForeignKeyConstraint(
            ["association_id"],
            ["essay_student_associations.id"],
            name=op.f("fk_association_history_association_id_essay_student_associations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_student_id"],
            ["students.id"],
            name=op.f("fk_association_history_from_student_id_students"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_student_id"],
            ["students.id"],
            name=op.f("fk_association_history_to_student_id_students"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_association_history")),
    )
    op.create_index(
        op.f("ix_association_history_association_id"),
        "association_history",
        ["association_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_association_history_association_id"), table_name="association_history")
    op.drop_table("association_history")
    op.drop_column("essay_student_associations", "suggestions")
