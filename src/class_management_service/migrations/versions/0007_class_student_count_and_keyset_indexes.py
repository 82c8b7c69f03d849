"""classes.student_count kept by the membership writes; keyset indexes for the list sorts

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30 14:00:00

``classes.student_count`` is the number of ``class_students`` rows of the class, kept by
statement-level triggers on ``class_students`` (transition tables: one UPDATE per statement and
class, however many rows the statement or COPY wrote). A trigger rather than statements in the
use cases because memberships also disappear through foreign-key cascades (deleting a student),
which no use case statement sees, and because then no present or future writer can forget it.
The class rows are locked in id order before the update, so two statements touching the same
classes in different orders wait for each other instead of deadlocking. The increment runs on
the latest committed row (READ COMMITTED re-reads a row updated meanwhile), so concurrent
membership changes never lose a count.

The indexes serve keyset pagination (``http/pagination.py``): per teacher, each sort key of the
list routes followed by ``id``, the order the pages are read in (backwards for ``-sort``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNT_FUNCTION = """
CREATE FUNCTION class_students_keep_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM 1 FROM classes WHERE id IN (SELECT class_id FROM added)
        ORDER BY id FOR NO KEY UPDATE;
        UPDATE classes c SET student_count = c.student_count + d.n
        FROM (SELECT class_id, count(*) AS n FROM added GROUP BY class_id) d
        WHERE c.id = d.class_id;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM 1 FROM classes WHERE id IN (SELECT class_id FROM removed)
        ORDER BY id FOR NO KEY UPDATE;
        UPDATE classes c SET student_count = c.student_count - d.n
        FROM (SELECT class_id, count(*) AS n FROM removed GROUP BY class_id) d
        WHERE c.id = d.class_id;
    END IF;
    RETURN NULL;
END;
$$
"""
TRIGGERS = (
    """
    CREATE TRIGGER class_students_count_insert AFTER INSERT ON class_students
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION class_students_keep_count()
    """,
    """
    CREATE TRIGGER class_students_count_delete AFTER DELETE ON class_students
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION class_students_keep_count()
    """,
    """
    CREATE TRIGGER class_students_count_update AFTER UPDATE ON class_students
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION class_students_keep_count()
    """,
)

# (name, table, key expressions after created_by_user_id, before id)
KEYSET_INDEXES = (
    ("ix_classes_owner_name", "classes", "lower((name)::text)"),
    ("ix_classes_owner_created_id", "classes", "created_at"),
    (
        "ix_students_owner_name",
        "students",
        "lower((((last_name)::text || ' ') || (first_name)::text))",
    ),
    ("ix_students_owner_email", "students", "(email IS NULL), COALESCE(email, '')"),
    ("ix_students_owner_created", "students", "created_at"),
)


def upgrade() -> None:
    op.add_column(
        "classes",
        sa.Column("student_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_classes_student_count_not_negative"), "classes", "student_count >= 0"
    )
    op.execute(
        """
        UPDATE classes c SET student_count = m.n
        FROM (SELECT class_id, count(*) AS n FROM class_students GROUP BY class_id) m
        WHERE c.id = m.class_id
        """
    )
    op.execute(COUNT_FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)
    op.drop_index("ix_classes_owner_created", table_name="classes")
    for name, table, keys in KEYSET_INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} (created_by_user_id, {keys}, id)")


def downgrade() -> None:
    for name, _table, _keys in KEYSET_INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.create_index(
        "ix_classes_owner_created", "classes", ["created_by_user_id", "created_at"], unique=False
    )
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER class_students_count_{trigger} ON class_students")
    op.execute("DROP FUNCTION class_students_keep_count()")
    op.drop_constraint(op.f("ck_classes_student_count_not_negative"), "classes", type_="check")
    op.drop_column("classes", "student_count")
