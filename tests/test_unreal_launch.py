"""``datagen record --backend unreal``: finding the editor, the command line, the run.

The editor here is tests/fake_unreal_editor.py behind an ``UnrealEditor-Cmd`` wrapper: the
editor double as a process that reads the command line the driver builds, loads the map (a
built-in scene) and runs the plugin's script from the project's Plugins folder, where the test
copies ``ue_plugin/`` as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
import unreal_double
from unreal_peer import EditorPeer

from datagen.cli import main as datagen
from datagen.episode import find_episodes
from datagen.episode_check import validate_episode
from datagen.unreal.config import UnrealConfig
from datagen.unreal.launch import (
    JOB_ENV,
    Events,
    LaunchError,
    editor_command,
    find_editor,
    find_script,
    record_episodes,
)

ROOT = Path(__file__).resolve().parents[1]
FAKE = Path(__file__).resolve().parent / "fake_unreal_editor.py"
SMALL = ["--frames", "30", "--size", "96x64", "--no-progress"]


def make_project(tmp_path: Path, plugin: bool = True) -> Path:
    project = tmp_path / "Game" / "Game.uproject"
    project.parent.mkdir(parents=True)
    project.write_text(json.dumps({"FileVersion": 3, "EngineAssociation": "5.6"}))
    if plugin:
        shutil.copytree(ROOT / "ue_plugin", project.parent / "Plugins" / "WorldforgeRecorder")
    return project


def make_editor(tmp_path: Path) -> Path:
    """An ``UnrealEditor-Cmd`` that runs the fake editor."""
    path = tmp_path / "Engine" / "Binaries" / "Linux" / "UnrealEditor-Cmd"
    path.parent.mkdir(parents=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def record(tmp_path: Path, project: Path, editor: Path, *extra: str) -> int:
    return datagen(["record", "--backend", "unreal", "--project", str(project),
                    "--map", "/Game/Maps/Rooms", "--editor", str(editor),
                    "--out", str(tmp_path / "out"), *SMALL, *extra])


# ------------------------------------------------------------------ finding things


def test_the_command_line_is_headless_on_a_fixed_step():
    cfg = UnrealConfig(project="/p/My Game/Game.uproject", map="/Game/Maps/City", fps=24)
    script = Path("/p/My Game/Plugins/WorldforgeRecorder/Content/Python/worldforge_record.py")
    argv = editor_command(Path("/ue/UnrealEditor-Cmd"), cfg, script, windows=False)
    assert argv[:3] == ["/ue/UnrealEditor-Cmd", "/p/My Game/Game.uproject", "/Game/Maps/City"]
    assert f"-ExecutePythonScript={script}" in argv  # one argument: the editor quotes it
    assert {"-RenderOffscreen", "-UseFixedTimeStep", "-FPS=24", "-Unattended"} <= set(argv)
    line = editor_command(Path(r"C:\UE 5.6\UnrealEditor-Cmd.exe"), cfg, script, windows=True)
    assert line.startswith(r'"C:\UE 5.6\UnrealEditor-Cmd.exe" "/p/My Game/Game.uproject" ')
    assert f'-ExecutePythonScript="{script}"' in line and " -FPS=24 " in line


def test_the_editor_is_found_or_the_error_says_how(tmp_path, monkeypatch):
    editor = make_editor(tmp_path)
    assert find_editor(str(editor), None) == editor
    assert find_editor(None, str(tmp_path)) == editor  # --engine-dir: the root holding Engine/
    with pytest.raises(LaunchError, match="no such file"):
        find_editor(str(tmp_path / "nope"), None)
    with pytest.raises(LaunchError, match="has no Engine/Binaries/Linux/UnrealEditor-Cmd"):
        find_editor(None, str(tmp_path / "Engine"))
    monkeypatch.setenv("PATH", str(editor.parent))
    assert find_editor(None, None) == editor
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LaunchError, match="give --editor PATH or --engine-dir"):
        find_editor(None, None)


def test_a_project_without_the_plugin_is_refused_before_anything_runs(tmp_path, capsys):
    editor = make_editor(tmp_path)
    bare = make_project(tmp_path, plugin=False)
    with pytest.raises(LaunchError, match="lacks the worldforge plugin: copy ue_plugin/"):
        find_script(str(bare))
    assert record(tmp_path, bare, editor) == 2
    assert "lacks the worldforge plugin" in capsys.readouterr().err
    assert not (tmp_path / "out" / "Rooms").exists()
    assert datagen(["record", "--backend", "unreal", "--project", str(bare)]) == 2
    assert "--backend unreal needs --map" in capsys.readouterr().err
    assert record(tmp_path, tmp_path / "missing.uproject", editor) == 2
    assert "no such file" in capsys.readouterr().err


def test_events_are_read_whole_lines_at_a_time(tmp_path):
    path = tmp_path / "events.jsonl"
    events = Events(path)
    assert events.new() == []  # not written yet
    path.write_text('{"event": "started"}\n{"event": "fra')
    assert events.new() == [{"event": "started"}]
    with open(path, "a") as f:
        f.write('mes", "n": 30}\n')
    assert events.new() == [{"event": "frames", "n": 30}] and events.new() == []


# ------------------------------------------------------------------ running editors


def test_record_launches_the_editor_and_finishes_episodes(tmp_path, capsys):
    project, editor = make_project(tmp_path), make_editor(tmp_path)
    assert record(tmp_path, project, editor, "--episodes", "2", "--streams", "1") == 0
    printed = capsys.readouterr().out
    finished, partial = find_episodes(tmp_path / "out")
    assert [p.name for p in finished] == ["Rooms_0_00000", "Rooms_0_00001"] and not partial
    assert all(validate_episode(p) == [] for p in finished)
    assert "2 finished, 0 failed" in printed
    meta = json.loads((finished[0] / "meta.json").read_text())
    assert meta["engine"]["record_config"]["project"] == str(project.resolve())
    log = next((tmp_path / "out" / ".unreal").glob("editor-*.log")).read_text()
    assert "-UseFixedTimeStep" in log and "quit=True" in log  # the editor closed itself
    assert record(tmp_path, project, editor, "--episodes", "2") == 0  # all there: skipped
    assert "2 episode(s) already recorded" in capsys.readouterr().out


def test_streams_are_editors_side_by_side(tmp_path):
    project, editor = make_project(tmp_path), make_editor(tmp_path)
    assert record(tmp_path, project, editor, "--episodes", "3", "--streams", "2") == 0
    finished, _ = find_episodes(tmp_path / "out")
    assert len(finished) == 3
    assert len(list((tmp_path / "out" / ".unreal").glob("editor-*.log"))) == 2


def test_an_editor_that_dies_fails_what_it_had_left_with_its_log(tmp_path, capsys, monkeypatch):
    project, editor = make_project(tmp_path), make_editor(tmp_path)
    monkeypatch.setenv("FAKE_EDITOR_EXIT_AFTER", "60")
    assert record(tmp_path, project, editor, "--episodes", "2", "--streams", "1") == 1
    err = capsys.readouterr().err
    assert err.count("FAILED") == 2 and "exited with code 3 before finishing" in err
    assert "Fatal error: the double was told to die" in err  # the end of the editor's log
    assert find_episodes(tmp_path / "out")[0] == []


def test_an_editor_off_the_fixed_step_is_reported_not_recorded(tmp_path, capsys, monkeypatch):
    project, editor = make_project(tmp_path), make_editor(tmp_path)
    monkeypatch.setenv("FAKE_EDITOR_DROP", "-UseFixedTimeStep")  # as if the flag were lost
    assert record(tmp_path, project, editor, "--streams", "1") == 1
    err = capsys.readouterr().err
    assert "the recorder stopped" in err and "not the fixed step" in err
    assert "-UseFixedTimeStep -FPS=30" in err
    log = next((tmp_path / "out" / ".unreal").glob("editor-*.log")).read_text()
    assert "-UseFixedTimeStep" not in log.splitlines()[0]


def test_attach_records_in_a_running_editor_over_remote_execution(tmp_path, monkeypatch):
    port = 20000 + (os.getpid() * 11 + id(object())) % 20000
    level = unreal_double.SceneLevel("rooms", (3.0e7, -2.0e7))
    module, editor = level.editor()
    monkeypatch.setitem(sys.modules, "unreal", module)
    monkeypatch.syspath_prepend(str(ROOT / "ue_plugin" / "Content" / "Python"))
    for name in [m for m in sys.modules if m.startswith("worldforge_ue")]:
        monkeypatch.delitem(sys.modules, name)
    peer = EditorPeer("239.0.0.1", port, "Game")
    stop = threading.Event()

    def engine_loop() -> None:  # the editor's own thread, ticking while a script is alive
        while not stop.is_set():
            if editor.keep_alive and editor.callbacks:
                editor.tick()
            else:
                time.sleep(0.005)

    loop = threading.Thread(target=engine_loop, daemon=True)
    loop.start()
    cfg = UnrealConfig(project=str(tmp_path / "Game.uproject"), map="/Game/Maps/Rooms",
                       frames=30, width=96, height=64, attach=True, port=port,
                       timeout_s=60.0)
    reports = []
    try:
        record_episodes(cfg, [4], tmp_path / "out", lambda *r: reports.append(r))
    finally:
        stop.set()
        loop.join(timeout=5)
        peer.stop()
    assert [r[0] for r in reports if r[0] != "frames"] == ["finished"], reports
    assert sum(r[1] for r in reports if r[0] == "frames") == 30
    assert validate_episode(reports[-1][1]) == []
    assert not editor.quit  # an attached editor stays open
    assert "record_here(['--job'" in peer.commands[0]["data"]["command"]
    assert JOB_ENV not in os.environ
