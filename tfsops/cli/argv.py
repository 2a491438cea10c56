"""Accept global options before or after the command name (as docker and kubectl do).

Click only accepts group options before the sub-command, so the argument list
is rearranged once, before click sees it: recognised global options found
after the command name are moved in front of it.
"""

from __future__ import annotations

from collections.abc import Sequence

# option -> takes a value
GLOBAL_OPTIONS: dict[str, bool] = {
    "--json": False,
    "-v": False,
    "--verbose": False,
    "-vv": False,
    "-f": True,
    "--file": True,
    "-d": True,
    "--deployment": True,
    "--docker-host": True,
    "--context": True,
}

# Commands whose own options reuse a global short flag (``logs -f`` = follow).
COMMAND_OWNED: dict[str, set[str]] = {"logs": {"-f"}}


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    args = list(argv)
    # Find the command name: the first token that is not a global option (or its value).
    i = 0
    while i < len(args):
        token = args[i]
        name = token.split("=", 1)[0]
        if token == "--":
            return args
        if name in GLOBAL_OPTIONS:
            i += 1 if ("=" in token or not GLOBAL_OPTIONS[name]) else 2
            continue
        break
    if i >= len(args) or args[i].startswith("-"):
        return args  # no command (e.g. --help)
    command = args[i]
    owned = COMMAND_OWNED.get(command, set())
    head, rest = args[: i + 1], args[i + 1 :]
    moved: list[str] = []
    kept: list[str] = []
    j = 0
    while j < len(rest):
        token = rest[j]
        if token == "--":
            kept.extend(rest[j:])
            break
        name = token.split("=", 1)[0]
        if name in GLOBAL_OPTIONS and name not in owned:
            moved.append(token)
            if GLOBAL_OPTIONS[name] and "=" not in token and j + 1 < len(rest):
                moved.append(rest[j + 1])
                j += 1
        else:
            kept.append(token)
        j += 1
    return head[:-1] + moved + [command] + kept
