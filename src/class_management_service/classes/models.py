from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.db import Base, TimestampMixin


class SchoolClass(TimestampMixin, Base):
    """A class owned by one teacher (``created_by_user_id`` is the gateway's X-User-ID)."""

    __tablename__ = "classes"
    # The keyset indexes of the list sorts (classes.queries): the teacher, the sort key, the id.
    __table_args__ = (
        Index("ix_classes_owner_name", "created_by_user_id", func.lower(text("name")), "id"),
        Index("ix_classes_owner_created_id", "created_by_user_id", "created_at", "id"),
        CheckConstraint("student_count >= 0", name="student_count_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    created_by_user_id: Mapped[str] = mapped_column(String(255))
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    # Set by the term-end archive (classes/archive.py): the class is read-only while it is set.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How many class_students rows the class has: kept by triggers on class_students in the
    # transaction that changes them (migration 0007), never written by the service.
    student_count: Mapped[int] = mapped_column(server_default="0")


class ClassMembership(Base):
    """Which students sit in which class (many-to-many)."""

    __tablename__ = "class_students"

    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own for "classes of this student" lookups; the PK covers class-first lookups.
    student_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), primary_key=True, index=True
    )
