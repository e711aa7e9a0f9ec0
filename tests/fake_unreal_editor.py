"""``UnrealEditor-Cmd`` for the host driver's tests: the editor double, run as a process.

Invoked with the command line ``datagen record --backend unreal`` builds, it reads it the way
the editor does (the project, the map, ``-ExecutePythonScript=FILE``, ``-UseFixedTimeStep`` with
``-FPS=N`` for a fixed step, otherwise a real-time step that wobbles), loads the map (a built-in
scene named like the map's last part, mirrored into Unreal's frame), installs the double as
``unreal``, puts the plugin's ``Content/Python`` on the path as the editor does for an enabled
plugin, runs the script, and ticks until the script lets go or quits the editor. It logs like
the editor on stdout. ``FAKE_EDITOR_EXIT_AFTER=N`` makes it die after N ticks with exit code 3;
``FAKE_EDITOR_DROP=ARG`` makes it ignore the command-line argument ``ARG``.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import unreal_double  # noqa: E402

ORIGIN = (3.0e7, -2.0e7)


def main(argv: list[str]) -> int:
    argv = [a for a in argv if a != os.environ.get("FAKE_EDITOR_DROP")]
    print("LogInit: Command Line: " + " ".join(argv), flush=True)
    positional = [a for a in argv if not a.startswith("-")]
    flags = {a.split("=", 1)[0].lower(): (a.split("=", 1) + [""])[1] for a in argv
             if a.startswith("-")}
    project, level = Path(positional[0]), positional[1]
    script = Path(flags["-executepythonscript"])
    if "-renderoffscreen" not in flags:
        print("LogInit: Error: no display", flush=True)
        return 1
    fps = float(flags.get("-fps") or 0)
    if "-usefixedtimestep" in flags and fps > 0:
        def dt(tick: int) -> float:
            return 1.0 / fps
    else:
        def dt(tick: int) -> float:
            return 1.0 / 60.0 + 0.002 * (tick % 3)

    scene = level.rsplit("/", 1)[-1].lower()
    module, editor = unreal_double.SceneLevel(scene, ORIGIN).editor(dt=dt)
    editor.saved_dir = str(project.parent / "Saved")
    sys.modules["unreal"] = module
    sys.path.insert(0, str(script.parent))
    exit_after = int(os.environ.get("FAKE_EDITOR_EXIT_AFTER", "0"))
    if exit_after:
        tick = editor.tick

        def dying() -> None:
            tick()
            editor.ticks_run = getattr(editor, "ticks_run", 0) + 1
            if editor.ticks_run >= exit_after:
                print("LogCore: Fatal error: the double was told to die", flush=True)
                os._exit(3)

        editor.tick = dying
    print(f"LogPython: running {script}", flush=True)
    sys.argv = [str(script)]
    runpy.run_path(str(script), run_name="__main__")
    ticks = editor.run(max_ticks=200_000)
    print(f"LogPython: script done after {ticks} ticks; quit={editor.quit}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
