"""The Unreal recorder's real code, run end to end in the editor double.

The double's level is a built-in scene (rooms) mirrored into Unreal's frame 300 km from the
origin, its frames rendered by the built-in renderer from the capture's pose: the recorder
plays it through Enhanced Input console commands, and what it writes must be a valid episode
whose keys are the ones held during each frame's tick, whose poses are the camera's, whose
frames show those poses, the same bytes for the same seed, that curation accepts.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import unreal_double

from curation.cli import main as curation
from datagen.episode import KEYS, find_episodes, read_actions
from datagen.episode_check import validate_episode
from datagen.unreal.config import Job, UnrealConfig
from datagen.video import read_frames

PYTHON = Path(__file__).resolve().parents[1] / "ue_plugin" / "Content" / "Python"
ORIGIN = (3.0e7, -2.0e7)  # Unreal cm: 300 km east, 200 km "right" of the origin
SIZE = (96, 64)
KEY_NAMES = ("W", "S", "A", "D", "SpaceBar", "LeftShift", "LeftControl")


class Rig:
    """A double editor playing the rooms scene, with the plugin imported against it."""

    def __init__(self, monkeypatch, tmp_path: Path, scene: str = "rooms", **double) -> None:
        self.level = unreal_double.SceneLevel(scene, ORIGIN)
        self.away = self.level.away
        self.unreal, self.editor = self.level.editor(**double)
        monkeypatch.setitem(sys.modules, "unreal", self.unreal)
        monkeypatch.syspath_prepend(str(PYTHON))
        for name in [m for m in sys.modules if m.startswith("worldforge_ue")]:
            monkeypatch.delitem(sys.modules, name)
        self.recorder_module = importlib.import_module("worldforge_ue.recorder")
        self.tmp = tmp_path
        self.ticks: list[tuple[frozenset, np.ndarray]] = []  # per game tick: keys held, eye

    def record(self, indices=(0,), name="out", max_ticks=3000, **config) -> tuple[Path, list]:
        cfg = UnrealConfig(project="/projects/Double/Double.uproject", map="/Game/Maps/Double",
                           frames=config.pop("frames", 45), width=SIZE[0], height=SIZE[1],
                           seed=config.pop("seed", 3), settle_ticks=5, **config)
        out, events = self.tmp / name, self.tmp / f"{name}.jsonl"
        job = Job(config=cfg, indices=tuple(indices), out=str(out), events=str(events))
        self.recorder_module.Recorder(job).start()
        self._watch()
        self.editor.run(max_ticks)
        return out, [json.loads(line) for line in events.read_text().splitlines()]

    def _watch(self) -> None:
        """Log the keys each game tick ran with and the eye after it."""
        tick = self.editor.tick

        def logged() -> None:
            held = frozenset() if self.editor.game is None else frozenset(self.editor.game.held)
            tick()  # the game's step, with ``held``, then the recorder's post-tick callback
            game = self.editor.game
            if game is not None:
                eye = game.eye()
                self.ticks.append((held & set(KEY_NAMES), np.array([eye.x, eye.y, eye.z])))

        self.editor.tick = logged


@pytest.fixture
def rig(monkeypatch, tmp_path):
    return lambda **kw: Rig(monkeypatch, tmp_path, **kw)


def test_recorded_episodes_are_valid_and_their_rows_are_the_ticks(rig):
    r = rig()
    out, events = r.record(indices=(0, 1), frames=90)
    assert [e["event"] for e in events if e["event"] != "frames"] == [
        "started", "finished", "finished", "done"], events[-1]
    assert r.editor.quit and not r.editor.callbacks and not r.editor.keep_alive
    assert r.editor.requested == "end"  # PIE asked to stop
    assert not [a for a in r.editor.level.actors if isinstance(a, r.unreal.SceneCapture2D)]
    finished, partial = find_episodes(out)
    assert [p.name for p in finished] == ["Double_3_00000", "Double_3_00001"] and not partial
    for path in finished:
        assert validate_episode(path) == []
        _, cols = read_actions(path / "actions.csv")
        keys = np.column_stack([cols[f"key_{k}"] for k in KEYS])
        eye = np.column_stack([cols["pos_x"], -cols["pos_y"], cols["pos_z"]]) * 100.0
        # frame i is a game tick: the run of ticks whose eye is the logged camera (float64)
        eyes = np.array([e for _, e in r.ticks])
        first = [t for t in range(len(eyes) - len(eye) + 1)
                 if np.allclose(eyes[t:t + len(eye)], eye, rtol=0, atol=1e-6)]
        assert len(first) == 1
        ticks = r.ticks[first[0]:first[0] + len(eye)]
        held = np.array([[int(n in h) for n in KEY_NAMES] for h, _ in ticks])
        assert np.array_equal(held, keys)  # the keys of a row are those held in its tick
        assert keys[:, :4].any(axis=1).sum() > 20  # it walked
        travelled = np.hypot(*np.diff(eye[:, :2], axis=0).T).sum() / 100.0
        assert travelled > 2.0
        assert abs(cols["pos_x"][0]) > 2.9e5  # 300 km out, and still exact (above)
        meta = json.loads((path / "meta.json").read_text())
        assert meta["backend"] == "unreal" and meta["scene"] == "Double"
        assert meta["engine"]["agent"]["look_gain_deg"] == pytest.approx([2.5, 1.75])
        assert meta["engine"]["navmesh"]["queries"] > 0
        assert meta["settings"]["sun"]["pitch"] == pytest.approx(-40.0)
        assert meta["engine"]["record_config"]["map"] == "/Game/Maps/Double"


def test_frames_show_the_logged_camera(rig):
    r = rig()
    out, _ = r.record(frames=40)
    (path,), _ = find_episodes(out)
    _, cols = read_actions(path / "actions.csv")
    origin = np.array([ORIGIN[0] / 100.0, -ORIGIN[1] / 100.0, 0.0])
    frames = list(read_frames(path / "video.mp4"))
    for i in (0, 20, 39):
        position = np.array([cols["pos_x"][i], cols["pos_y"][i], cols["pos_z"][i]]) - origin
        quat = np.array([cols[c][i] for c in ("qw", "qx", "qy", "qz")])
        expected = r.level.renderer(*SIZE, 90.0).render(position, quat, r.away)
        expected = expected.astype(float)
        mse = np.mean((frames[i].astype(float) - expected) ** 2)
        assert 10 * np.log10(255.0**2 / max(mse, 1e-9)) > 28.0, i


def test_same_seed_same_bytes_and_an_inverted_look_is_calibrated(rig, tmp_path):
    digests = []
    for n, scale in enumerate([(2.5, 1.75), (2.5, 1.75), (0.8, -1.2)]):
        r = rig(look_scale=scale)
        out, events = r.record(name=f"run{n}", frames=60)
        assert events[-1]["event"] == "done"
        (path,), _ = find_episodes(out)
        assert validate_episode(path) == []
        digests.append(((path / "actions.csv").read_bytes(), (path / "video.mp4").read_bytes()))
        gains = json.loads((path / "meta.json").read_text())["engine"]["agent"]["look_gain_deg"]
        assert gains == pytest.approx(list(scale))
    assert digests[0] == digests[1]


def test_an_engine_off_the_fixed_step_is_refused_by_name(rig):
    r = rig(dt=lambda tick: 1 / 30 if tick < 20 else 1 / 30 + 0.004 * (tick % 3))
    out, events = r.record(frames=60)
    assert events[-1]["event"] == "error" and "-UseFixedTimeStep -FPS=30" in events[-1]["reason"]
    assert r.editor.quit and not r.editor.callbacks and r.editor.requested == "end"
    assert find_episodes(out)[0] == []  # nothing that looks finished


def test_a_look_axis_that_turns_nothing_is_refused_by_name(rig):
    r = rig(look_scale=(0.0, 0.0))
    _, events = r.record()
    assert events[-1]["event"] == "error" and "Mouse XY 2D-Axis" in events[-1]["reason"]


def test_a_level_without_navmesh_bounds_stops_with_the_reason(rig):
    r = rig(bounds=None)
    _, events = r.record()
    assert events[-1]["event"] == "error" and "no NavMeshBoundsVolume" in events[-1]["reason"]


def test_a_failed_episode_is_reported_and_the_next_goes_on(rig):
    r = rig()
    (r.tmp / "out" / "Double" / "Double_3_00000").mkdir(parents=True)  # in the way
    out, events = r.record(indices=(0, 1), frames=30)
    kinds = [e["event"] for e in events if e["event"] != "frames"]
    assert kinds == ["started", "failed", "finished", "done"]
    assert "already exists" in events[1]["reason"]
    assert validate_episode(out / "Double" / "Double_3_00001") == []


@pytest.mark.slow
def test_curation_turns_unreal_episodes_into_shards(rig, tmp_path):
    r = rig()
    out, events = r.record(indices=(0, 1), frames=150)
    assert events[-1]["event"] == "done"
    shards = tmp_path / "shards"
    assert curation(["filter", str(out), "--out", str(shards), "--clip-frames", "33",
                     "--size", "96x64", "--val-fraction", "0", "--no-progress"]) == 0
    dataset = json.loads((shards / "dataset.json").read_text())
    assert dataset["counts"]["train"]["clips"] >= 4
    assert not dataset["rejects"].get("invalid episode")


def test_the_menu_and_console_command_record_the_open_level(rig, tmp_path):
    r = rig()
    r.editor.saved_dir = str(tmp_path / "Saved")
    menu = importlib.import_module("worldforge_ue.menu")
    menu.register()
    (s1, record), (s2, stop) = r.editor.menus["LevelEditor.MainMenu.Tools"]
    assert s1 == s2 == "worldforge"
    assert "record_here()" in record["command"][1] and "m.stop()" in stop["command"][1]
    recorder = menu.record_here(["--frames", "30", "--seed", "5", "--size", "96x64"])
    with pytest.raises(RuntimeError, match="already running"):
        menu.record_here([])
    r.editor.run(2000)
    events = (tmp_path / "Saved" / "worldforge" / "events.jsonl").read_text()
    assert recorder.finished and not r.editor.quit, events  # the editor stays open

    (path,), _ = find_episodes(tmp_path / "Saved" / "worldforge" / "episodes")
    assert path.name == "Double_5_00000" and validate_episode(path) == []


def test_a_recording_stops_on_request_and_when_play_ends(rig, tmp_path):
    r = rig()
    r.editor.saved_dir = str(tmp_path / "Saved")
    menu = importlib.import_module("worldforge_ue.menu")
    assert menu.stop() is False  # nothing under way
    recorder = menu.record_here(["--frames", "300", "--size", "96x64"])
    r.editor.run(80)  # into the first episode
    assert menu.record_here(["--stop"]) is None
    r.editor.run(10)
    assert recorder.finished and not r.editor.callbacks and r.editor.requested == "end"
    events = (tmp_path / "Saved" / "worldforge" / "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["event"] == "stopped"
    finished, partial = find_episodes(tmp_path / "Saved" / "worldforge" / "episodes")
    assert finished == [] and len(partial) == 1  # cut short: never looks finished

    r = rig()
    out, events = r.record(frames=300, max_ticks=80)
    r.editor.requested = "end"  # the user presses Stop in the editor
    r.editor.run(10)
    events = [json.loads(line) for line in (r.tmp / "out.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error" and "Play In Editor ended" in events[-1]["reason"]
