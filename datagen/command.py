"""What every worldforge command line shares: the usage error and the way a command is run.

A command raises :class:`UsageError` for anything the user can fix; :func:`run` prints it as
one ``<prog>: error: ...`` line with exit code 2, and turns Ctrl-C into a message and 130.
:func:`config_flags` gives a command one ``--flag`` per field of its config dataclass, its help
the comment beside the field (a boolean one alone means true, ``--resume``, and has a
``--no-`` form, ``--no-progress``), and
:func:`given_fields` collects the ones the user set, so a config, its flags and their help never
drift; :func:`parse_size` reads the ``WIDTHxHEIGHT`` of every ``--size``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable

EXIT_USAGE = 2  # bad arguments or unusable paths
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)``: the WIDTHxHEIGHT every ``--size`` takes; ValueError
    with the expected form otherwise."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT like 640x360, got {text!r}") from None
    return width, height


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


def _field_type(cls: type, f: dataclasses.Field) -> object:
    hint = typing.get_type_hints(cls)[f.name]
    if isinstance(hint, types.UnionType):  # "float | None": the non-None member
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _boolean(text: str) -> bool:
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


def _parser_for(kind: object) -> tuple[Callable[[str], object], str]:
    """The argparse ``type`` and metavar of a field annotation; ``tuple[int, ...]`` takes a
    comma-separated list."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]

        def items(text: str) -> tuple:
            return tuple(item(v) for v in text.split(",") if v.strip())

        return items, f"{item.__name__.upper()},..."
    return (_boolean if kind is bool else kind), kind.__name__.upper()


_FIELD = re.compile(r"^\s+(\w+):[^#]*#\s?(.*)$")
_MORE = re.compile(r"^\s+#(?!\s*---)\s*(.*)$")  # not a "# --- section" line


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` of a dataclass written ``name: type = default  # comment``, with
    the comment lines right below it (``#`` only) joined on; base classes included."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        name = None
        for line in lines:
            if m := _FIELD.match(line):
                name = m.group(1)
                comments[name] = m.group(2).strip()
            elif name and (m := _MORE.match(line)):
                comments[name] += " " + m.group(1).strip()
            else:
                name = None
    return comments


def config_flags(parser: argparse.ArgumentParser, cls: type, title: str,
                 skip: tuple[str, ...] = (), defaults: object = None) -> None:
    """One ``--flag`` per field of the config dataclass ``cls`` (but ``skip``), default None
    (= the field's default, or its value in ``defaults``, an instance the command starts
    from), its help the field's comment."""
    group = parser.add_argument_group(title)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, metavar = _parser_for(_field_type(cls, f))
        default = f.default if f.default is not dataclasses.MISSING else "required"
        if defaults is not None:
            default = getattr(defaults, f.name)
        said = comments.get(f.name, "").replace("%", "%%")
        name = f.name.replace("_", "-")
        flag = {"nargs": "?", "const": True} if kind is _boolean else {}  # bare --resume: true
        shown = f"{said} (default: {default})" if said else f"default: {default}"
        if kind is _boolean:  # --no-progress, as on the commands without a config
            shown += f"; --no-{name}: false"
            group.add_argument(f"--no-{name}", dest=f.name, action="store_const", const=False,
                               default=None, help=argparse.SUPPRESS)
        group.add_argument(f"--{name}", default=None, type=kind, metavar=metavar, **flag,
                           help=shown)


def given_fields(args: argparse.Namespace, cls: type) -> dict:
    """The fields of ``cls`` the user set on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}
