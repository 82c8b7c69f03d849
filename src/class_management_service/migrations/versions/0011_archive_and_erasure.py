"""term-end archive of classes; erasure of students' personal data

Revision ID: 0011
Revises: 0005
Create Date: 2026-11-30 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: active. Set: archived (read-only, hidden from lists unless asked for).
    op.add_column("classes", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    # NULL: a person. Set: the personal data was erased; only the pseudonymous id remains.
    op.add_column("students", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("students", "erased_at")
    op.drop_column("classes", "archived_at")
