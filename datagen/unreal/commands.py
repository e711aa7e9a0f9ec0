"""``datagen unreal find`` and ``datagen unreal exec``: running editors, over remote execution.

``find`` lists the editors that answer on this machine (project, engine version, machine, node
id); ``exec 'STATEMENT'`` runs one Python statement (or, with ``--mode evaluate``, evaluates an
expression) in one of them and prints what it printed and returned. Both need the project's
"Enable Remote Execution" Python setting on; see docs/unreal.md for the rest.
"""

from __future__ import annotations

import argparse
import sys

from datagen.command import UsageError
from datagen.unreal.remote import BIND, GROUP, PORT, Client, RemoteError

MODES = {"execute": "ExecuteStatement", "evaluate": "EvaluateStatement", "file": "ExecuteFile"}
NOT_FOUND = ("no Unreal editor answered on {group}:{port} (bind {bind}). Is the editor running "
             "with Edit > Project Settings > Python > Enable Remote Execution on? An editor on "
             "another machine answers only once its Multicast Bind Address is not 127.0.0.1 (the "
             "default since UE 5.3), and --bind here is this machine's address on that network")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``unreal`` command and its ``find`` and ``exec`` subcommands."""
    unreal = sub.add_parser("unreal", help="find running Unreal editors and run Python in one")
    actions = unreal.add_subparsers(dest="unreal_command", required=True, metavar="ACTION")
    find = actions.add_parser("find", help="list the editors that answer")
    run = actions.add_parser("exec", help="run a Python statement in an editor")
    run.add_argument("statement", help="Python to run (a path with --mode file)")
    run.add_argument("--mode", choices=list(MODES), default="execute",
                     help="execute a statement (default), evaluate an expression, run a file")
    run.add_argument("--project", help="the editor whose project has this name (default: the "
                                       "only one that answers)")
    for p in (find, run):
        p.add_argument("--bind", default=BIND, help=f"this machine's address (default {BIND})")
        p.add_argument("--group", default=GROUP, help=f"multicast group (default {GROUP})")
        p.add_argument("--port", type=int, default=PORT, help=f"discovery port (default {PORT})")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply")
        p.add_argument("--wait", type=float, default=1.0, help="seconds to wait for pongs")


def cmd_unreal(args: argparse.Namespace) -> int:
    try:
        with Client(args.group, args.port, args.bind, (args.bind, 0), args.timeout) as client:
            editors = client.find(args.wait)
            if not editors:
                raise UsageError(NOT_FOUND.format(group=args.group, port=args.port,
                                                  bind=args.bind))
            if args.unreal_command == "find":
                for e in editors:
                    print(f"{e.project_name}  UE {e.engine_version}  on {e.machine} "
                          f"({e.user})  {e.project_root}  node {e.node}")
                return 0
            editor = _choose(editors, args.project)
            client.connect(editor)
            result = client.run(args.statement, MODES[args.mode])
    except RemoteError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(result.text)
    if args.mode == "evaluate" and result.success:
        print(result.result)
    return 0 if result.success else 1


def _choose(editors: list, project: str | None):
    if project is not None:
        chosen = [e for e in editors if e.project_name == project]
        if not chosen:
            raise UsageError(f"no editor has project {project!r}; answering: "
                             f"{', '.join(e.project_name for e in editors)}")
        return chosen[0]
    if len(editors) > 1:
        raise UsageError(f"{len(editors)} editors answered "
                         f"({', '.join(e.project_name for e in editors)}); choose one with "
                         "--project")
    return editors[0]
