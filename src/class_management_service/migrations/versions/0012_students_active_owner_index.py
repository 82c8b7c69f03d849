"""reads: the teacher's listed (not erased) students counted from an index alone

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 16:30:00

An offset page of ``GET /v1/classes/students`` answers ``pagination.total``: the teacher's students
that are not erased. Without this index PostgreSQL counted them by a bitmap heap scan (every row
of the teacher read to test ``erased_at``), which was half of the page's cost for a teacher of
3,000. The partial index holds exactly the rows that count, so the count is an index-only scan.

Built ``CONCURRENTLY``: a plain ``CREATE INDEX`` would block every student write for as long as the
build of a large table takes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_students_owner_listed",
            "students",
            ["created_by_user_id"],
            unique=False,
            postgresql_where="erased_at IS NULL",
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_students_owner_listed",
            table_name="students",
            postgresql_where="erased_at IS NULL",
            postgresql_concurrently=True,
        )
