"""Every app of a process shares the API's routes (bootstrap.build_app)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from class_management_service.bootstrap import API_ROUTERS, build_app
from class_management_service.settings import Settings

# Placeholders: building an app connects to nothing.
SETTINGS = Settings(
    database_url="postgresql+asyncpg://nobody:unused@127.0.0.1:1/none",
    redis_url="redis://127.0.0.1:1/0",
    kafka_bootstrap_servers="127.0.0.1:1",
    run_consumer=False,
    run_outbox_relay=False,
    run_timeout_monitor=False,
    run_retention=False,
)


async def test_apps_hold_the_routers_routes_themselves_in_matching_order() -> None:
    """A router included into an app has its routes built again for that app, on its first
    requests (~60 ms of CPU); the routers' own routes were built once, at import."""
    first, second = build_app(SETTINGS), build_app(SETTINGS)
    try:
        expected = [route for router in API_ROUTERS for route in router.routes]
        assert all(isinstance(route, APIRoute) for route in expected)
        for app in (first, second):
            api_routes = [route for route in app.routes if isinstance(route, APIRoute)]
            assert [id(route) for route in api_routes] == [id(route) for route in expected]
    finally:
        await first.state.container.close()
        await second.state.container.close()


def test_the_routers_need_nothing_else_of_an_inclusion() -> None:
    """What include_router would add besides the routes: the routers' lifespan and event
    handlers. None of them has any, so adding their routes alone loses nothing."""
    default_lifespan = type(APIRouter().lifespan_context)
    for router in API_ROUTERS:
        assert type(router.lifespan_context) is default_lifespan
        assert not router.on_startup
        assert not router.on_shutdown
