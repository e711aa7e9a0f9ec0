"""`datagen` from the command line: recording end to end, validation, errors a user can cause."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest

from datagen.backend import get_backend
from datagen.builtin.record import RecordConfig
from datagen.builtin.scenes import SCENES
from datagen.cli import main
from datagen.episode import find_episodes, read_episode
from datagen.episode_check import validate_episode
from datagen.rotation import wrap_deg
from datagen.video import read_frames

SMALL = ["--frames", "24", "--size", "128x72", "--no-progress"]


def record(out: Path, *extra: str) -> int:
    return main(["record", "--out", str(out), *SMALL, *extra])


@pytest.mark.parametrize("scene", list(SCENES))
def test_every_scene_records_valid_episodes(tmp_path, scene):
    assert record(tmp_path, "--scene", scene, "--seed", "3", "--streams", "1") == 0
    finished, partial = find_episodes(tmp_path)
    assert [p.name for p in finished] == [f"{scene}_3_00000"] and partial == []
    assert validate_episode(finished[0]) == []
    episode = read_episode(finished[0])
    assert episode.meta.frames == 24 and episode.meta.backend == "builtin"
    assert episode.meta.settings["time_of_day"] is not None
    assert main(["validate", str(tmp_path)]) == 0


def test_two_streams_record_the_same_bytes_as_one(tmp_path):
    """Episode content depends only on (seed, index), never on the stream that recorded it."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert record(one, "--scene", "park", "--episodes", "2", "--streams", "1") == 0
    assert record(two, "--scene", "park", "--episodes", "2", "--streams", "2") == 0
    for name in ("park_0_00000", "park_0_00001"):
        a, b = one / "park" / name, two / "park" / name
        assert (a / "actions.csv").read_bytes() == (b / "actions.csv").read_bytes()
        assert (a / "video.mp4").read_bytes() == (b / "video.mp4").read_bytes()


def test_same_seed_gives_identical_csv_and_decoded_frames(tmp_path):
    for run in ("a", "b"):
        assert record(tmp_path / run, "--scene", "city", "--seed", "11", "--streams", "1") == 0
    a, b = (tmp_path / run / "city" / "city_11_00000" for run in ("a", "b"))
    assert (a / "actions.csv").read_bytes() == (b / "actions.csv").read_bytes()
    frames_a, frames_b = list(read_frames(a / "video.mp4")), list(read_frames(b / "video.mp4"))
    assert len(frames_a) == len(frames_b) == 24
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True))
    assert record(tmp_path / "c", "--scene", "city", "--seed", "12", "--streams", "1") == 0
    c = tmp_path / "c" / "city" / "city_12_00000"
    assert (a / "actions.csv").read_bytes() != (c / "actions.csv").read_bytes()


def test_actions_align_with_camera_motion(tmp_path):
    assert record(tmp_path, "--scene", "hills", "--frames", "90", "--streams", "1") == 0
    d = read_episode(tmp_path / "hills" / "hills_0_00000").data
    assert d["mouse_dx"][0] == 0 and d["mouse_dy"][0] == 0
    np.testing.assert_allclose(d["mouse_dx"][1:], -wrap_deg(np.diff(d["yaw"])), atol=1e-9)
    np.testing.assert_allclose(d["mouse_dy"][1:], np.diff(d["pitch"]), atol=1e-9)
    q = np.stack([d[c] for c in ("qw", "qx", "qy", "qz")], axis=1)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(d["t"], d["frame"] / 30)


def test_rerun_skips_finished_episodes(tmp_path, capsys):
    assert record(tmp_path, "--scene", "rooms", "--streams", "1") == 0
    csv = tmp_path / "rooms" / "rooms_0_00000" / "actions.csv"
    before = csv.stat().st_mtime_ns
    assert record(tmp_path, "--scene", "rooms", "--streams", "1") == 0
    assert "already recorded" in capsys.readouterr().out
    assert csv.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["record", "--scene", "moon"], "unknown scene 'moon'"),
        (["record", "--size", "641x360"], "even"),
        (["record", "--fps", "0"], "at least 1"),
        (["record", "--size", "wide"], "WIDTHxHEIGHT"),
        (["record", "--profile", "frantic"], "unknown --profile"),
        (["record", "--crf", "99"], "--crf"),
        (["record", "--seed", "-1"], "must be 0 or more"),
        (["record", "--first-index", "-2"], "must be 0 or more"),
        (["record", "--size", "100000x100000"], "size must be between"),
        (["record", "--preset", "bogus"], "invalid choice: 'bogus'"),
        (["record", "--backend", "blender"], "invalid choice: 'blender'"),
        (["validate", "/nonexistent/episodes"], "no such file"),
        (["plan", "--seed", "-3", "--plot", "p.png"], "must be 0 or more"),
        (["plan", "--seconds", "-1", "--plot", "p.png"], "must be positive"),
    ],
)
def test_bad_arguments_get_one_clear_line_and_nonzero_exit(args, message, capsys, tmp_path):
    argv = [*args, "--out", str(tmp_path)] if args[0] == "record" else args
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own checks exit directly
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_backends_are_found_by_name_and_an_unknown_one_is_named():
    """The interface every recorder backend offers (datagen/backend.py), looked up by name."""
    backend = get_backend("builtin")
    assert backend.name == "builtin" and backend.config is RecordConfig
    cfg = RecordConfig(scene="park", seed=3)
    assert backend.episode_id(cfg, 7) == "park_3_00007"
    assert backend.config_differences(cfg, {**asdict(cfg), "frames": 5}) == [
        f"frames: 5 there, {cfg.frames} now"]
    assert get_backend("unreal").name == "unreal"
    gta = get_backend("gta")  # live: a session instead of episodes by index
    assert gta.record_session is not None and gta.episode_id is None
    with pytest.raises(ValueError, match="unknown backend 'gtav'; choose from builtin, unreal, "
                                         "gta"):
        get_backend("gtav")


def test_rerun_with_other_settings_is_refused_not_skipped(tmp_path, capsys):
    assert record(tmp_path, "--scene", "rooms", "--streams", "1") == 0
    assert main(["record", "--out", str(tmp_path), "--scene", "rooms", "--frames", "30",
                 "--size", "128x72", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "recorded with other settings (frames: 24 there, 30 now)" in err


def test_validate_refuses_files_and_empty_folders(tmp_path, capsys):
    assert record(tmp_path / "raw", "--scene", "city", "--streams", "1") == 0
    csv = tmp_path / "raw" / "city" / "city_0_00000" / "actions.csv"
    (tmp_path / "empty").mkdir()
    for target, message in ((csv, "is a file"), (tmp_path / "empty", "no episodes found")):
        assert main(["validate", str(target)]) == 2
        assert message in capsys.readouterr().err


def test_plan_draws_the_world_of_a_recorded_episode(tmp_path, capsys):
    out = tmp_path / "plan.png"
    assert main(["plan", "--scene", "park", "--seed", "4", "--trajectories", "2",
                 "--seconds", "2", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plan", "--plot", str(tmp_path / "plan.txt")]) == 2
    assert "give a .png path" in capsys.readouterr().err


def test_unwritable_output_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["record", "--out", str(blocker / "raw"), *SMALL]) == 2
    assert "cannot create output folder" in capsys.readouterr().err


def test_validate_reports_problems_and_exits_nonzero(tmp_path, capsys):
    assert record(tmp_path, "--scene", "city", "--streams", "1") == 0
    episode = tmp_path / "city" / "city_0_00000"
    lines = (episode / "actions.csv").read_text().splitlines()
    (episode / "actions.csv").write_text("\n".join(lines[:-3]) + "\n")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "actions.csv" in out


@pytest.mark.slow
def test_sigkill_mid_recording_leaves_only_a_partial_folder(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "datagen.cli", "record", "--out", str(tmp_path), "--scene",
         "city", "--frames", "3000", "--size", "128x72", "--streams", "1", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    partial = tmp_path / "city" / "city_0_00000.partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        csv = partial / "actions.csv"
        if csv.exists() and csv.read_text().count("\n") > 60:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished, partials = find_episodes(tmp_path)
    assert finished == [] and partials == [partial]
    assert not (tmp_path / "city" / "city_0_00000").exists()
    problems = validate_episode(partial)
    assert any("partial" in p.message or "unfinished" in p.message for p in problems)
    assert sum(1 for _ in read_frames(partial / "video.mp4")) > 0  # salvageable up to the crash


@pytest.mark.slow
def test_streams_stop_when_the_recorder_is_killed(tmp_path):
    """Killing the parent (timeout, SLURM, docker stop) must not leave orphan streams that go on
    recording every remaining episode: they die with it and leave only .partial folders."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "datagen.cli", "record", "--out", str(tmp_path), "--scene",
         "city", "--episodes", "4", "--frames", "3000", "--size", "128x72", "--streams", "2",
         "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("city/*.partial"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        proc.kill()  # the parent alone, not its process group
        proc.wait()
        time.sleep(2.0)  # the streams notice within 0.25 s
        sizes = {p: (p / "actions.csv").stat().st_size for p in tmp_path.glob("city/*.partial")}
        time.sleep(1.5)
        assert len(sizes) == 2
        assert all((p / "actions.csv").stat().st_size == n for p, n in sizes.items())
        assert find_episodes(tmp_path)[0] == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class _Settings:
    size: int = 4  # frames per clip
    rate: float | None = None  # 100% of lr when None;
    #                            continued below
    # --- a section of its own, not part of rate's help
    plain: str = "x"
    check: bool = False  # check it


def test_config_flags_take_their_help_from_the_fields_comments():
    import argparse

    from datagen.command import config_flags, given_fields

    parser = argparse.ArgumentParser()
    config_flags(parser, _Settings, "settings")
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["size"] == "frames per clip (default: 4)"
    assert helps["rate"] == "100%% of lr when None; continued below (default: None)"
    assert helps["plain"] == "default: x"
    assert helps["check"] == "check it (default: False); --no-check: false"
    assert "100% of lr" in parser.format_help()  # argparse's % escape
    assert given_fields(parser.parse_args(["--rate", "0.5"]), _Settings) == {"rate": 0.5}
    # a boolean is true given alone, and takes a value too
    for argv, value in ((["--check"], True), (["--check", "false"], False),
                        (["--check", "yes"], True), (["--no-check"], False)):
        assert given_fields(parser.parse_args(argv), _Settings) == {"check": value}
    assert given_fields(parser.parse_args([]), _Settings) == {}
