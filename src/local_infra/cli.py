"""`local-infra`: run the dev PostgreSQL, Redis and Kafka servers on loopback, no Docker."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from local_infra.dev import DEV_DATABASE, DevStack
from local_infra.external import ENV_VARS, external_from_env
from local_infra.install import ensure_installed
from local_infra.paths import HOME_ENV_VAR, infra_root
from local_infra.process import ServerStartError
from local_infra.server import SERVER_NAMES
from local_infra.tools import TOOL_NAMES, ensure_tools

_ENV_LINES = "\n".join(f"  {var}" for var in ENV_VARS.values())
_DESCRIPTION = f"""\
Install (if missing) and run real PostgreSQL, Redis and Kafka (KRaft) servers on 127.0.0.1
for local development, without Docker. Servers run in the background until `down`; their
data, logs and ports live under <repo>/.infra/dev (set {HOME_ENV_VAR} to move <repo>/.infra).

typical use:
  local-infra install            # only install what is missing (apt, Maven, npm); start nothing
  local-infra up                 # start all three (idempotent; same ports next time)
  eval "$(local-infra env)"      # point the service at them
  local-infra status
  local-infra down               # stop them (data is kept; `down --wipe` deletes it)

External servers: if one of these variables is set (to anything but the URL `env` printed
for our own server), nothing is installed or started for that server; its URL is used as is.
{_ENV_LINES}
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-infra",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names_help = f"servers to act on: any of {', '.join(SERVER_NAMES)} (default: all)"

    up = commands.add_parser(
        "up",
        help="install what is missing and start servers",
        description="Install what is missing and start the servers on free loopback ports. "
        "Running servers are reused; stopped ones get their old ports back. The dev "
        f"PostgreSQL gets a database '{DEV_DATABASE}'.",
    )
    up.add_argument("names", nargs="*", metavar="NAME", help=names_help)

    install = commands.add_parser(
        "install",
        help="install what the servers need, start nothing",
        description="Install what is missing (apt packages when root, the Kafka jars via "
        "Maven, the PostgreSQL initdb template, the Kafka JVM class-data archive) so that "
        "later starts are fast, and the API-document tests' tools (Debian's chromium, the "
        "AsyncAPI JSON Schemas via npm ci). External servers (variables below) are skipped.",
    )
    install.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"servers or test tools: any of {', '.join(SERVER_NAMES + TOOL_NAMES)} (default: all)",
    )

    down = commands.add_parser("down", help="stop servers (keeps their data)")
    down.add_argument("names", nargs="*", metavar="NAME", help=names_help)
    down.add_argument("--wipe", action="store_true", help="also delete their data and ports")

    commands.add_parser("status", help="show name, pid, port, running and URL of each server")
    commands.add_parser(
        "env",
        help="print `export VAR=URL` lines for the running servers",
        description='Print shell exports for the running servers: eval "$(local-infra env)"',
    )
    return parser


def _names(given: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    unknown = [name for name in given if name not in SERVER_NAMES]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)} (choose from {SERVER_NAMES})")
    return list(given) or list(SERVER_NAMES)


def _print_status(stack: DevStack) -> None:
    header = ("NAME", "PID", "PORT", "RUNNING", "URL")
    table: list[tuple[str, ...]] = [header]
    for status in stack.status():
        pid = str(status.pid) if status.pid else ("external" if status.external else "-")
        port = str(status.port) if status.port else "-"
        running = "yes" if status.running else "no"
        table.append((status.name, pid, port, running, status.url or "-"))
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        # The URL column is last and not padded, so lines carry no trailing blanks.
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        print("  ".join([*cells, line[-1]]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    stack = DevStack()
    try:
        if args.command == "up":
            stack.up(_names(args.names, parser))
            print('local-infra: ready. Use them with: eval "$(local-infra env)"', file=sys.stderr)
        elif args.command == "install":
            tools = [n for n in args.names if n in TOOL_NAMES]
            servers = [n for n in args.names if n not in TOOL_NAMES]
            if not args.names:
                tools = list(TOOL_NAMES)
            wanted = _names(servers, parser) if servers or not args.names else []
            local = [n for n in wanted if external_from_env(n) is None]
            ensure_installed(local)
            ensure_tools(tools, infra_root() / "cache")
            print(f"local-infra: ready to start: {', '.join(local) or 'nothing'}", file=sys.stderr)
        elif args.command == "down":
            stack.down(_names(args.names, parser), wipe=args.wipe)
        elif args.command == "status":
            _print_status(stack)
        elif args.command == "env":
            for var, url in stack.env().items():
                print(f"export {var}={shlex.quote(url)}")
    except ServerStartError as error:
        print(f"local-infra: {error}", file=sys.stderr)
        return 1
    return 0
