"""``/docs`` and ``/asyncapi`` render in Debian's headless chromium with every request to a
non-loopback address refused: their scripts and styles come from the service itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from class_management_service.bootstrap import build_app
from class_management_service.settings import Settings
from tests.postgres.docs.browser import Page, browser_page, serving
from tests.waiting import wait_for

CDN_ASSET = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_OPERATIONS = """
Array.from(document.querySelectorAll('.opblock')).map(block => [
  block.querySelector('.opblock-summary-method').textContent.toLowerCase(),
  block.querySelector('.opblock-summary-path').getAttribute('data-path'),
])
"""

# The text of the page, shadow roots included (the AsyncAPI viewer renders into one).
RENDERED_TEXT = """
(() => {
  const parts = [];
  const walk = node => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) parts.push(child.textContent);
      else walk(child);
    }
  };
  walk(document.body);
  return parts.join(' ');
})()
"""


def _loopback_only(page: Page) -> None:
    hosts = {urlsplit(url).hostname for url in page.requested if url.startswith("http")}
    assert hosts == {"127.0.0.1"}, page.requested


async def _rendered(page: Page, expression: str, done: Callable[[Any], bool]) -> Any:
    value: Any = None

    async def rendered() -> bool:
        nonlocal value
        value = await page.evaluate(expression)
        return done(value)

    await wait_for(rendered, within=30, what=lambda: f"the page to render: {value}")
    return value


async def test_docs_and_asyncapi_pages_render_with_no_network(
    make_settings: Callable[..., Settings], chromium: Path, tmp_path: Path
) -> None:
    app = build_app(make_settings())
    try:
        async with serving(app) as base, browser_page(chromium, tmp_path / "profile") as page:
            async with httpx.AsyncClient(base_url=base) as client:
                openapi = (await client.get("/openapi.json")).json()
                asyncapi = (await client.get("/asyncapi.json")).json()
            operations = sorted(
                [method, path] for path, methods in openapi["paths"].items() for method in methods
            )
            await page.navigate(f"{base}/docs")
            listed = await _rendered(page, SWAGGER_OPERATIONS, bool)
            assert sorted(listed) == operations

            # Every operation and channel of the AsyncAPI document is on its page.
            names = [
                *asyncapi["operations"],
                *(c["address"] for c in asyncapi["channels"].values()),
            ]
            await page.navigate(f"{base}/asyncapi")
            await _rendered(
                page,
                RENDERED_TEXT,
                lambda text: isinstance(text, str) and all(name in text for name in names),
            )
            _loopback_only(page)

            # The network is closed indeed: the CDN the pages used to load from is unreachable.
            refused = await page.call("Page.navigate", url=CDN_ASSET)
            assert refused.get("errorText"), refused
    finally:
        await app.state.container.close()
