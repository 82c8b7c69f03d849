"""The one guard of archived classes: every write that touches a class or its memberships
passes :func:`ensure_writable` first, so an archived class is read-only (409) whatever route
writes to it.

Reads are not guarded (an archived class is still served, its roster to the NLP service too),
nor is the review of batches already in flight (a batch's associations are not the class's),
nor erasure (a legal duty that outranks the archive; ``students/data_rights.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.classes.models import SchoolClass
from class_management_service.errors import Conflict


async def ensure_writable(
    session: AsyncSession, teacher_id: str, class_ids: Collection[uuid.UUID] | Select[Any]
) -> None:
    """Raise :class:`Conflict` when one of the teacher's classes among ``class_ids`` (ids, or a
    select of ids) is archived.

    The classes are held FOR NO KEY UPDATE, in id order, until the transaction ends, so an
    archive (an UPDATE) waits for the write that passed the guard to commit, and a guard waiting
    behind an archive reads the archived row (READ COMMITTED re-reads a row it waited for): no
    write slips into a class archived meanwhile. Not FOR SHARE: a guarded write goes on to
    change memberships, whose trigger updates the class row's ``student_count``; two writers
    each holding a share lock and then upgrading it would deadlock.
    Another teacher's classes are the caller's ownership check (404); the guard ignores them,
    so it never tells whether they exist.
    """
    if not isinstance(class_ids, Select) and not class_ids:
        return
    archived = sorted(
        str(class_id)
        for class_id, archived_at in await session.execute(
            select(SchoolClass.id, SchoolClass.archived_at)
            .where(
                SchoolClass.id.in_(class_ids),
                SchoolClass.created_by_user_id == teacher_id,
            )
            .order_by(SchoolClass.id)
            .with_for_update(key_share=True)
        )
        if archived_at is not None
    )
    if archived:
        raise Conflict(
            "The class is archived and read-only; unarchive it first "
            "(POST /v1/classes/{class_id}/unarchive).",
            {"archived_class_ids": archived},
        )
