"""What every worldforge command line shares: the usage error and the way a command is run.

A command raises :class:`UsageError` for anything the user can fix; :func:`run` prints it as
one ``<prog>: error: ...`` line with exit code 2, and turns Ctrl-C into a message and 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_USAGE = 2  # bad arguments or unusable paths
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


def run(parser: argparse.ArgumentParser, commands: dict[str, Callable[[argparse.Namespace], int]],
        argv: list[str] | None, interrupted: str) -> int:
    """Parse ``argv``, call the chosen command and return its exit code."""
    args = parser.parse_args(argv)
    try:
        return commands[args.command](args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
