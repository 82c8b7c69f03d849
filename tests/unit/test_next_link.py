"""The next page's ``Link`` (http/pagination.next_link) is exactly what Starlette's query
rewriting gives: the same path and query, ``offset`` gone, ``cursor`` set last."""

from __future__ import annotations

import pytest
from starlette.datastructures import URL

from class_management_service.http.pagination import next_link

TOKEN = "AbC-_123"


@pytest.mark.parametrize(
    "url",
    [
        "http://service/v1/classes/",
        "http://service/v1/classes/?limit=50",
        "http://service/v1/classes/?offset=40&limit=20&sort=-name",
        "http://service/v1/classes/students?cursor=old&limit=5&cursor=older",
        "http://service/v1/classes/students?q=%C3%A5sa+%26+co&class_id=&offset=0",
        "http://service/v1/classes/students?sort=name&sort=email&flag&offset=1&offset=2",
        "http://service/v1/classes/0b3c/students?q=100%25&limit=20",
    ],
)
def test_next_link_is_starlettes_rewrite(url: str) -> None:
    expected = URL(url).remove_query_params("offset").include_query_params(cursor=TOKEN)
    assert next_link(URL(url), TOKEN) == f'<{expected.path}?{expected.query}>; rel="next"'
