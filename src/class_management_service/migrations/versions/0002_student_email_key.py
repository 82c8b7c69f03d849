"""student e-mails compared in a normalised form, enforced by the database

Revision ID: 0002
Revises: 0001b
Create Date: 2026-11-30 11:40:00.000000

``normalized_email(email)`` is the one rule (the service's ``students.schemas.email_key`` does
the same in Python, for rows it checks before writing): invisible characters removed, NFKC,
trimmed, case-folded (upper then lower, with ICU's language-neutral root collation so the result
does not depend on the database's locale: a "C" locale would only fold ASCII), NFKC again.
``students.email_key`` is generated from it, and a teacher's students are unique by that key,
whoever writes the row. Upgrading fails if a teacher already has two students whose e-mails are
equal in this form; such pairs must be merged by hand first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of Unicode's Default_Ignorable_Code_Point characters as a regex class (the
# service's students.schemas.INVISIBLE_CHARACTERS; a migration must not change meaning later).
INVISIBLE = (
    "[\\u00AD\\u034F\\u061C\\u115F\\u1160\\u17B4\\u17B5\\u180B-\\u180F\\u200B-\\u200F"
    "\\u202A-\\u202E\\u2060-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF0-\\uFFF8"
    "\\U0001BCA0-\\U0001BCA3\\U0001D173-\\U0001D17A\\U000E0000-\\U000E0FFF]"
)

NORMALIZED_EMAIL_FUNCTION = f"""
CREATE FUNCTION normalized_email(email text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN normalize(
    lower(upper(
        btrim(
            regexp_replace(
                normalize(regexp_replace(email, '{INVISIBLE}', '', 'g'), NFKC),
                '{INVISIBLE}', '', 'g'
            ),
            E' \\t\\n\\r\\f\\v'
        ) COLLATE "und-x-icu"
    )),
    NFKC
)
"""


def upgrade() -> None:
    op.execute(NORMALIZED_EMAIL_FUNCTION)
    op.add_column(
        "students",
        sa.Column(
            "email_key",
            sa.Text(),
            sa.Computed("normalized_email(email)", persisted=True),
            nullable=True,
        ),
    )
    op.drop_constraint("uq_students_owner_email", "students", type_="unique")
    op.create_unique_constraint(
        "uq_students_owner_email_key", "students", ["created_by_user_id", "email_key"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_students_owner_email_key", "students", type_="unique")
    op.create_unique_constraint(
        "uq_students_owner_email", "students", ["created_by_user_id", "email"]
    )
    op.drop_column("students", "email_key")
    op.execute("DROP FUNCTION normalized_email(text)")
