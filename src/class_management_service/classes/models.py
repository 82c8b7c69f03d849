from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.db import Base, TimestampMixin


class SchoolClass(TimestampMixin, Base):
    """A class owned by one teacher (``created_by_user_id`` is the gateway's X-User-ID)."""

    __tablename__ = "classes"
    __table_args__ = (Index("ix_classes_owner_created", "created_by_user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    created_by_user_id: Mapped[str] = mapped_column(String(255))
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    # Set by the term-end archive (classes/archive.py): the class is read-only while it is set.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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
