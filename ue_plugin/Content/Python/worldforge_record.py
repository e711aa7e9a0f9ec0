"""Record with worldforge in this editor: ``py worldforge_record.py [--job FILE | options]``.

The editor's ``py`` console command runs this file with its arguments (the console command the
plugin adds); ``datagen record --backend unreal`` passes it to ``UnrealEditor-Cmd
-ExecutePythonScript`` with ``--job``. Options: ``py worldforge_record.py --help``.
"""

import sys

from worldforge_ue.menu import record_here

record_here(sys.argv[1:])
