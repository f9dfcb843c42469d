"""`nnfs` / `./course` commands. Run `./course help` for the list."""
from __future__ import annotations

import sys

from . import authoring

COMMANDS = {
    "totext": ("NOTEBOOK", "print a source notebook in the editable text form", lambda a: authoring.main(["totext", *a])),
    "fromtext": ("TEXT NOTEBOOK", "write a source notebook from the text form", lambda a: authoring.main(["fromtext", *a])),
}


def register(name: str, usage: str, description: str):
    def decorator(func):
        COMMANDS[name] = (usage, description, func)
        return func
    return decorator


def usage() -> str:
    lines = ["usage: ./course COMMAND [ARGS]   (or `nnfs COMMAND` inside the course environment)", "",
             "  test [PYTEST ARGS]   run the test suite"]
    for name, (args, description, _) in COMMANDS.items():
        command = f"  {name} {args}"
        lines.append(f"{command:23s}{description}" if len(command) < 23 else f"{command}\n{'':23s}{description}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from . import commands  # noqa: F401  (registers the course commands)
    if not argv or argv[0] in ("help", "-h", "--help") or argv[0] not in COMMANDS:
        print(usage())
        return 0 if not argv or argv[0] in ("help", "-h", "--help") else 2
    return int(COMMANDS[argv[0]][2](argv[1:]) or 0)
