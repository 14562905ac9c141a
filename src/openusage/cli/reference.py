"""Writes docs/cli.md from the commands' own ``--help``, so the reference never drifts.

    python -m openusage.cli.reference docs/cli.md

A test fails while the file differs from what this writes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

from . import main

WIDTH = 100


def _commands(
    command: click.Command, path: list[str], parent: click.Context | None
) -> Iterator[tuple[str, str]]:
    context = click.Context(
        command, info_name=path[-1], parent=parent, terminal_width=WIDTH, max_content_width=WIDTH
    )
    yield " ".join(path), command.get_help(context)
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(context)):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, [*path, name], context)


def render() -> str:
    parts = [
        "# CLI reference\n",
        "Written by `python -m openusage.cli.reference docs/cli.md` from each command's `--help`.\n",
    ]
    for name, text in _commands(main, ["openusage"], None):
        parts.append(f"## `{name}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/cli.md")
    target.write_text(render())
    print(f"wrote {target}")
