from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Computed, DateTime, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.db import Base, TimestampMixin


class Student(TimestampMixin, Base):
    __tablename__ = "students"
    # A teacher's student e-mail is unique per teacher in its normalised form (NULL e-mails
    # never collide in PostgreSQL).
    __table_args__ = (
        UniqueConstraint("created_by_user_id", "email_key", name="uq_students_owner_email_key"),
        # The keyset indexes of the list sorts (students.queries): the teacher, the sort key, the
        # id.
        Index(
            "ix_students_owner_name",
            "created_by_user_id",
            func.lower(text("(last_name || ' ') || first_name")),
            "id",
        ),
        Index(
            "ix_students_owner_email",
            "created_by_user_id",
            text("(email IS NULL)"),
            func.coalesce(text("email"), ""),
            "id",
        ),
        Index("ix_students_owner_created", "created_by_user_id", "created_at", "id"),
        # The listed (not erased) students of a teacher, counted by an index-only scan for an
        # offset page's total (migration 0012).
        Index(
            "ix_students_owner_listed",
            "created_by_user_id",
            postgresql_where=text("erased_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    legal_full_name: Mapped[str | None] = mapped_column(String(255))
    # Stored normalised by the service (students.schemas.email_key).
    email: Mapped[str | None] = mapped_column(String(255))
    # Written by the database from ``email`` with the same rule (migration 0002), so the
    # uniqueness holds whoever writes a row.
    email_key: Mapped[str | None] = mapped_column(
        Text, Computed("normalized_email(email)", persisted=True)
    )
    created_by_user_id: Mapped[str] = mapped_column(String(255), index=True)
    # Set by erasure (students/data_rights.py): names are a pseudonym, e-mail and legal name gone.
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
