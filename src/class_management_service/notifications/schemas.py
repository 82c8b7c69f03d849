"""Wire shape of ``TeacherNotificationRequestedV1`` (topic
``huleedu.notification.teacher.requested.v1``), as the platform's websocket service parses it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class NotificationCategory(enum.StrEnum):
    """The categories this service uses (the platform knows more)."""

    CLASS_MANAGEMENT = "class_management"
    STUDENT_WORKFLOW = "student_workflow"


class NotificationPriority(enum.StrEnum):
    CRITICAL = "critical"
    IMMEDIATE = "immediate"
    HIGH = "high"
    STANDARD = "standard"
    LOW = "low"


class TeacherNotificationRequestedV1(BaseModel):
    # The websocket service trusts this id: it is always the owner of the class concerned.
    teacher_id: str
    notification_type: str
    category: NotificationCategory
    priority: NotificationPriority
    payload: dict[str, Any]
    action_required: bool = False
    deadline_timestamp: datetime | None = None
    correlation_id: str
    batch_id: str | None = None
    class_id: str | None = None
    timestamp: datetime
