"""The baseline of the HTTP benchmark: a bare FastAPI app returning constants.

    python -m bench.baseline_app --port 8123

Served exactly like the service (one uvicorn worker with the service's ``uvicorn_options``:
uvloop, httptools with the request-head limits, no access log), so the service's figures
divided by these show what the service itself adds on top of the framework and the server:
middleware, dependencies, validation, database round trips, serialization.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from class_management_service.cli.serve import uvicorn_options
from class_management_service.settings import Settings

app = FastAPI()

CONSTANT = {"id": "00000000-0000-4000-8000-000000000000", "name": "constant"}


@app.get("/constant")
async def constant() -> dict[str, str]:
    return CONSTANT


@app.post("/constant", status_code=201)
async def post_constant() -> dict[str, str]:
    return CONSTANT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, **uvicorn_options(Settings()))


if __name__ == "__main__":
    main()
