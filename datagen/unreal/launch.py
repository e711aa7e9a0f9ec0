"""Launching and watching the editors that record: the host side of ``--backend unreal``.

One editor records a stream's episodes in one go (loading the project and the map takes longer
than an episode). :func:`record_episodes` writes a :class:`~datagen.unreal.config.Job` file,
then either launches ``UnrealEditor-Cmd`` headless on it (:func:`editor_command`: the project,
the map, ``-ExecutePythonScript`` with the plugin's recorder script, ``-RenderOffscreen``, a
fixed step of ``1 / fps`` with ``-UseFixedTimeStep -FPS=N``; the job's path goes in the
``WORLDFORGE_JOB`` environment variable, so nothing needs quoting) or, with ``attach``, asks a
running editor to run it over remote execution (:mod:`datagen.unreal.remote`). Either way it
follows the job's events file (:class:`Events`) and reports progress, finished and failed
episodes as they happen; an editor that exits early, stops with an error or falls silent for
``timeout_s`` fails the episodes it had left, with the reason and the end of its log.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from datagen.unreal.config import Job, UnrealConfig, episode_id
from datagen.unreal.remote import GROUP, Client, RemoteError

PLUGIN = "WorldforgeRecorder"
SCRIPT = "worldforge_record.py"
JOB_ENV = "WORLDFORGE_JOB"
EDITOR_NAMES = {"Windows": ("Win64", "UnrealEditor-Cmd.exe"), "Linux": ("Linux",
                "UnrealEditor-Cmd"), "Darwin": ("Mac", "UnrealEditor-Cmd")}
POLL_S = 0.2
LOG_TAIL_LINES = 12

Report = Callable[..., None]  # report("frames", n) / ("finished", path) / ("failed", id, why)


class LaunchError(RuntimeError):
    """The editor, the project or the plugin cannot be found or used; the message says why."""


def find_editor(editor: str | None, engine_dir: str | None) -> Path:
    """``UnrealEditor-Cmd``: ``editor`` if given, else under ``engine_dir``, else on PATH."""
    system = platform.system()
    folder, name = EDITOR_NAMES.get(system, EDITOR_NAMES["Linux"])
    if editor:
        path = Path(editor)
        if not path.is_file():
            raise LaunchError(f"--editor {editor}: no such file")
        return path
    if engine_dir:
        path = Path(engine_dir) / "Engine" / "Binaries" / folder / name
        if not path.is_file():
            raise LaunchError(f"--engine-dir {engine_dir} has no {path.relative_to(engine_dir)}"
                              " (the engine's root folder, the one that holds Engine/)")
        return path
    found = shutil.which(name)
    if found is None:
        raise LaunchError(f"cannot find {name}: give --editor PATH or --engine-dir "
                          "ENGINE_ROOT, or put the engine's Binaries folder on PATH")
    return Path(found)


def find_script(project: str) -> Path:
    """The recorder script of the plugin installed in ``project``; LaunchError when the project
    or the plugin is missing."""
    uproject = Path(project)
    if not uproject.is_file():
        raise LaunchError(f"--project {project}: no such file")
    try:
        json.loads(uproject.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise LaunchError(f"--project {project} is not a readable .uproject: {exc}") from None
    for descriptor in sorted((uproject.parent / "Plugins").rglob(f"{PLUGIN}.uplugin")):
        script = descriptor.parent / "Content" / "Python" / SCRIPT
        if script.is_file():
            return script
    raise LaunchError(f"the project {uproject.name} lacks the worldforge plugin: copy "
                      f"ue_plugin/ to {uproject.parent / 'Plugins' / PLUGIN}/ (docs/unreal.md)")


def editor_command(editor: Path, cfg: UnrealConfig, script: Path,
                   windows: bool | None = None) -> list[str] | str:
    """The headless command line: an argument list, or on Windows the command-line string
    (where Unreal parses ``-Key="value with spaces"`` itself)."""
    windows = platform.system() == "Windows" if windows is None else windows
    args = [("", cfg.project), ("", cfg.map), ("-ExecutePythonScript=", str(script)),
            ("-RenderOffscreen", None), ("-Unattended", None), ("-NoSplash", None),
            ("-NoSound", None), ("-UseFixedTimeStep", None), (f"-FPS={cfg.fps}", None),
            ("-stdout", None), ("-FullStdOutLogOutput", None)]
    if not windows:
        return [str(editor)] + [key + (value or "") for key, value in args]
    quoted = [f'"{editor}"']
    for key, value in args:
        if value is None:
            quoted.append(key)
        else:
            quoted.append(f'{key}"{value}"' if key else f'"{value}"')
    return " ".join(quoted)


def check_setup(cfg: UnrealConfig) -> None:
    """Before anything is recorded: the editor and the project's plugin are there (headless),
    or the project file is (attached); LaunchError says what is missing."""
    if cfg.attach:
        return
    find_editor(cfg.editor, cfg.engine_dir)
    find_script(cfg.project)


class Events:
    """The events the recorder appends to its file, read as they come (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path, self._offset, self._rest = path, 0, b""

    def new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


def record_episodes(cfg: UnrealConfig, indices: list[int], out: Path, report: Report) -> None:
    """Record ``indices`` of ``cfg`` under ``out`` in one editor (see the module docstring)."""
    work = Path(out).resolve() / ".unreal"
    work.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{indices[0]:05d}"
    job_path, events_path = work / f"job-{name}.json", work / f"events-{name}.jsonl"
    events_path.unlink(missing_ok=True)
    job = Job(config=cfg, indices=tuple(indices), out=str(Path(out).resolve()),
              events=str(events_path), quit=not cfg.attach)
    job.write(job_path)
    watch = _Watch(cfg, indices, report)
    if cfg.attach:
        _attach(cfg, job_path)
        watch.follow(Events(events_path), process=None, log=None)
        return
    editor = find_editor(cfg.editor, cfg.engine_dir)
    command = editor_command(editor, cfg, find_script(cfg.project))
    log = work / f"editor-{name}.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ,
                                                                  JOB_ENV: str(job_path)})
    try:
        watch.follow(Events(events_path), process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _attach(cfg: UnrealConfig, job_path: Path) -> None:
    """Start ``job_path`` in the one running editor with ``cfg.project``'s project."""
    project = Path(cfg.project).stem
    statement = f"import worldforge_ue.menu as m; m.record_here(['--job', {str(job_path)!r}])"
    try:
        with Client(GROUP, cfg.port, cfg.bind, (cfg.bind, 0), timeout=30.0) as client:
            editors = [e for e in client.find(1.0) if e.project_name == project]
            if not editors:
                raise LaunchError(f"no running editor has the project {project!r}: open it "
                                  "with Python remote execution enabled (docs/unreal.md)")
            client.connect(editors[0])
            result = client.run(statement)
    except RemoteError as exc:
        raise LaunchError(str(exc)) from None
    if not result.success:
        raise LaunchError(f"the editor could not start the job: {result.text.strip()}")


class _Watch:
    """Turns a job's events into reports, and failures of the editor into failed episodes."""

    def __init__(self, cfg: UnrealConfig, indices: list[int], report: Report) -> None:
        self.cfg, self.report = cfg, report
        self.pending = [episode_id(cfg, i) for i in indices]
        self.frames: dict[str, int] = {}

    def follow(self, events: Events, process: subprocess.Popen | None, log: Path | None) -> None:
        heard = time.monotonic()
        while self.pending:
            batch = events.new()
            if batch:
                heard = time.monotonic()
            for event in batch:
                if self._take(event):
                    return
            if process is not None and process.poll() is not None:
                for event in events.new():  # written just before it exited
                    if self._take(event):
                        return
                self._fail_rest(f"the editor exited with code {process.returncode} before "
                                f"finishing{_log_tail(log)}")
                return
            if time.monotonic() - heard > self.cfg.timeout_s:
                self._fail_rest(f"no word from the editor in {self.cfg.timeout_s:.0f} s"
                                f"{_log_tail(log)}")
                return
            time.sleep(POLL_S)

    def _take(self, event: dict) -> bool:
        """Report one event; True when the job is over."""
        kind, name = event.get("event"), event.get("episode")
        if kind == "frames":
            self.report("frames", event["n"] - self.frames.get(name, 0))
            self.frames[name] = event["n"]
        elif kind in ("finished", "failed") and name in self.pending:
            self.pending.remove(name)
            self.report("frames", self.cfg.frames - self.frames.get(name, 0))
            if kind == "finished":
                self.report("finished", Path(event["path"]))
            else:
                self.report("failed", name, event["reason"])
        elif kind in ("error", "stopped"):
            self._fail_rest(f"the recorder stopped: {event['reason']}")
            return True
        elif kind == "done":
            self._fail_rest("the recorder ended without it")
            return True
        return False

    def _fail_rest(self, reason: str) -> None:
        for name in self.pending:
            self.report("frames", self.cfg.frames - self.frames.get(name, 0))
            self.report("failed", name, reason)
        self.pending = []


def _log_tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return f" (log {log}; last lines:\n  " + "\n  ".join(lines) + ")" if lines else f" (log {log})"
