from __future__ import annotations

import uuid

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.db import Base, TimestampMixin


class Student(TimestampMixin, Base):
    __tablename__ = "students"
    # A teacher's student email is unique per teacher (NULL emails never collide in PostgreSQL).
    __table_args__ = (
        UniqueConstraint("created_by_user_id", "email", name="uq_students_owner_email"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    legal_full_name: Mapped[str | None] = mapped_column(String(255))
    # Stored lower-cased by the service so uniqueness is case-insensitive.
    email: Mapped[str | None] = mapped_column(String(255))
    created_by_user_id: Mapped[str] = mapped_column(String(255), index=True)
