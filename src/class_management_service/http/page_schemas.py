"""What every list response says about its page: the ``pagination`` object and the ``next``
cursor (the wire shapes; :mod:`.pagination` makes the pages).

Apart from :mod:`.pagination` so that the feature schemas naming them load pydantic alone, not
FastAPI, SQLAlchemy and asyncpg with the page statements.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

MAX_LIMIT = 200


class Pagination(BaseModel):
    """Where a page lies in the list (every list response carries it as ``pagination``)."""

    limit: int = Field(ge=1, le=MAX_LIMIT)
    offset: int = Field(ge=0, description="Items before this page.")
    returned: int = Field(ge=0, le=MAX_LIMIT, description="Items on this page.")
    total: int = Field(
        ge=0,
        description=(
            "Items matching the filters, on all pages. Counted on offset pages; a cursor page "
            "carries the count its walk began with (exact on the last page)."
        ),
    )


NextCursor = Annotated[
    str | None,
    Field(
        description=(
            "Opaque cursor of the next page (pass it as `cursor`), null on the last page; the "
            'same URL is in the `Link: <...>; rel="next"` header.'
        )
    ),
]
