"""Record with worldforge in this editor: ``py worldforge_record.py [--job FILE | options]``.

The editor's ``py`` console command runs this file with its arguments (the console command the
plugin adds); ``datagen record --backend unreal`` runs it with ``UnrealEditor-Cmd
-ExecutePythonScript`` and the job file's path in the ``WORLDFORGE_JOB`` environment variable.
Options: ``py worldforge_record.py --help``.
"""

import os
import sys

from worldforge_ue.menu import record_here

argv = sys.argv[1:]
if not argv and os.environ.get("WORLDFORGE_JOB"):
    argv = ["--job", os.environ["WORLDFORGE_JOB"]]
record_here(argv)
