"""EpisodeMeta, EpisodeWriter, read_episode and find_episodes: the contract's round trips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_frames, synthetic_rows

from datagen.episode import (
    ACTIONS_FILE,
    COLUMNS,
    FORMAT,
    KEY_COLUMNS,
    META_FILE,
    PARTIAL_SUFFIX,
    VIDEO_FILE,
    EpisodeError,
    EpisodeMeta,
    episode_dir,
    find_episodes,
    load_meta,
    read_episode,
)
from datagen.episode_check import validate_episode
from datagen.episode_writer import EpisodeWriter, write_episode
from datagen.video import probe, read_frames

REPO = Path(__file__).resolve().parents[1]


def meta(**kwargs) -> EpisodeMeta:
    args = {"episode_id": "synth_0_00000", "backend": "builtin", "scene": "synth", "seed": 0,
            "fps": 10, "width": 64, "height": 48, **kwargs}
    return EpisodeMeta(**args)


def test_round_trip_is_float64_exact(make_episode):
    ep = make_episode(frames=12, extra_columns=("speed",))
    back = read_episode(ep.path)
    assert back.columns == [*COLUMNS, "speed"]
    assert back.meta.frames == 12 and back.meta.duration_s == pytest.approx(1.2)
    assert back.data["frame"].dtype == np.int64 and back.data["key_w"].dtype == np.int64
    np.testing.assert_array_equal(back.data["frame"], np.arange(12))
    assert back.data["t"].tolist() == [i / 10 for i in range(12)]
    for column in [*COLUMNS[2:], "speed"]:
        sent = np.array([row[column] for row in ep.rows], dtype=np.float64)
        got = back.data[column]
        # bit equality, so -0.0 vs 0.0 and the last ulp of 0.1 + 0.2 both count
        assert sent.view(np.int64).tolist() == got.astype(np.float64).view(np.int64).tolist(), \
            column
    assert {0.1 + 0.2, 1e-300, 5e-324} <= set(back.data["pos_x"].tolist())
    assert np.signbit(back.data["pos_x"][2])  # the -0.0 row
    assert probe(ep.path / VIDEO_FILE).frames == 12


def test_meta_round_trip_keeps_unknown_keys(make_episode):
    ep = make_episode(meta_extra={"gta_build": "3095", "rig": {"lens": "wide"}})
    raw = json.loads((ep.path / META_FILE).read_text())
    assert raw["format"] == FORMAT and list(raw)[0] == "format"
    assert raw["gta_build"] == "3095" and raw["rig"] == {"lens": "wide"}
    back = load_meta(ep.path / META_FILE)
    assert back.extra == {"gta_build": "3095", "rig": {"lens": "wide"}}
    assert back.to_dict() == raw
    assert EpisodeMeta.from_dict(back.to_dict()) == back
    assert back.video["codec"] == "h264" and back.video["crf"] == 18
    assert back.engine == {"name": "synthetic"} and back.settings == {"pattern": "gradients"}


def test_meta_validates_its_fields():
    with pytest.raises(EpisodeError, match="fps must be positive, got 0"):
        meta(fps=0)
    with pytest.raises(EpisodeError) as err:
        meta(width=-1, episode_id="bad.id", backend="blender")
    for part in ("width must be a positive integer, got -1", "episode_id", "'bad.id'",
                 "backend must be one of builtin, unreal, gta"):
        assert part in str(err.value)


def test_meta_from_dict_names_wrong_or_missing_format_and_keys():
    good = meta().to_dict()
    with pytest.raises(EpisodeError, match="no 'format' key"):
        EpisodeMeta.from_dict({k: v for k, v in good.items() if k != "format"})
    with pytest.raises(EpisodeError, match="format is 'worldforge.episode/0'"):
        EpisodeMeta.from_dict({**good, "format": "worldforge.episode/0"})
    with pytest.raises(EpisodeError, match="missing seed, width"):
        EpisodeMeta.from_dict({k: v for k, v in good.items() if k not in ("seed", "width")})


def test_episode_dir_and_ids():
    assert episode_dir("out", "city", "city_7_00003") == Path("out/city/city_7_00003")
    with pytest.raises(EpisodeError, match="episode_id must be letters"):
        episode_dir("out", "city", "city.7")


def test_refuses_to_overwrite_a_finished_episode(make_episode):
    ep = make_episode()
    before = (ep.path / ACTIONS_FILE).read_bytes()
    with pytest.raises(EpisodeError, match="already exists; refusing to overwrite"):
        EpisodeWriter(ep.path.parents[1], ep.meta)
    assert (ep.path / ACTIONS_FILE).read_bytes() == before
    assert not ep.path.with_name(ep.path.name + PARTIAL_SUFFIX).exists()


def test_stale_partial_is_replaced(tmp_path):
    stale = tmp_path / "synth" / ("synth_0_00000" + PARTIAL_SUFFIX)
    stale.mkdir(parents=True)
    (stale / "leftover.bin").write_bytes(b"crash")
    image = synthetic_frames(1, 64, 48)[0]
    with EpisodeWriter(tmp_path, meta()) as writer:
        assert not (stale / "leftover.bin").exists()
        writer.add_frame(image, synthetic_rows(1)[0])
    assert not stale.exists()
    final = tmp_path / "synth" / "synth_0_00000"
    assert sorted(p.name for p in final.iterdir()) == [ACTIONS_FILE, META_FILE, VIDEO_FILE]
    assert validate_episode(final) == []


def test_add_frame_lists_every_bad_column(tmp_path):
    row = synthetic_rows(1)[0]
    del row["qw"], row["fov"]
    row.update(t=0.0, bogus=1.0)
    with EpisodeWriter(tmp_path, meta()) as writer:
        with pytest.raises(EpisodeError) as err:
            writer.add_frame(synthetic_frames(1, 64, 48)[0], row)
        writer.abort()
    message = str(err.value)
    assert "missing columns: qw, fov" in message
    assert "unknown columns: bogus, t" in message and "stamped by the writer" in message


def test_add_frame_rejects_bad_values(tmp_path):
    row = {**synthetic_rows(1)[0], "key_w": 2, "pos_x": float("nan"), "fov": "wide"}
    with EpisodeWriter(tmp_path, meta()) as writer:
        with pytest.raises(EpisodeError) as err:
            writer.add_frame(synthetic_frames(1, 64, 48)[0], row)
        writer.abort()
    for part in ("key_w must be 0 or 1, got 2", "pos_x must be finite, got nan",
                 "fov must be a number, got 'wide'"):
        assert part in str(err.value)


def test_key_columns_are_written_as_ints(make_episode):
    ep = make_episode(frames=3)
    lines = (ep.path / ACTIONS_FILE).read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        cells = dict(zip(header, line.split(","), strict=True))
        assert all(cells[c] in ("0", "1") for c in KEY_COLUMNS)


def test_exception_inside_writer_leaves_only_partial(tmp_path):
    with pytest.raises(RuntimeError, match="renderer crashed"), \
            EpisodeWriter(tmp_path, meta()) as writer:
        writer.add_frame(synthetic_frames(1, 64, 48)[0], synthetic_rows(1)[0])
        raise RuntimeError("renderer crashed")
    assert find_episodes(tmp_path) == ([], [tmp_path / "synth" / "synth_0_00000.partial"])


def test_finish_without_frames_is_refused(tmp_path):
    writer = EpisodeWriter(tmp_path, meta())
    with pytest.raises(EpisodeError, match="no frames; left unfinished"):
        writer.finish()
    assert find_episodes(tmp_path) == ([], [tmp_path / "synth" / "synth_0_00000.partial"])


def test_unwritable_output_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(EpisodeError, match=r"cannot write episode folder .*file/synth"):
        EpisodeWriter(blocker, meta())


def test_writer_meta_can_be_filled_before_finish(tmp_path):
    original = meta()
    with EpisodeWriter(tmp_path, original) as writer:
        writer.add_frame(synthetic_frames(1, 64, 48)[0], synthetic_rows(1)[0])
        writer.meta.engine = {"name": "panda3d", "fps_mean": np.float64(31.5)}
        path = writer.finish()
    assert load_meta(path / META_FILE).engine == {"name": "panda3d", "fps_mean": 31.5}
    assert original.frames == 0 and original.engine == {}  # the caller's copy is untouched


def test_find_episodes_from_any_level(make_episode, tmp_path):
    out = tmp_path / "out"
    a = make_episode(index=0).path
    b = make_episode(index=1).path
    c = make_episode(index=0, scene="other").path
    crashed = out / "synth" / "synth_0_00002.partial"
    crashed.mkdir()
    assert find_episodes(out) == ([c, a, b], [crashed])
    assert find_episodes(out / "synth") == ([a, b], [crashed])
    assert find_episodes(a) == ([a], [])
    assert find_episodes(crashed) == ([], [crashed])
    with pytest.raises(EpisodeError, match="no such folder"):
        find_episodes(out / "nope")


def test_read_episode_errors(make_episode, tmp_path):
    ep = make_episode()
    (ep.path / VIDEO_FILE).unlink()
    with pytest.raises(EpisodeError, match="missing video.mp4"):
        read_episode(ep.path)
    with pytest.raises(EpisodeError, match="no episode folder"):
        read_episode(tmp_path / "nothing")
    partial = tmp_path / "x.partial"
    partial.mkdir()
    with pytest.raises(EpisodeError, match="unfinished episode"):
        read_episode(partial)


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from conftest import synthetic_frames, synthetic_rows
    from datagen.episode import EpisodeMeta
    from datagen.episode_writer import EpisodeWriter, write_episode

    meta = EpisodeMeta(episode_id="crash_0_00000", backend="builtin", scene="crash", seed=0,
                       fps=10, width=160, height=96)
    images = synthetic_frames(50, 160, 96)
    rows = synthetic_rows(50)
    with EpisodeWriter(sys.argv[1], meta) as writer:
        i = 0
        while True:  # never finishes by itself: the test kills it
            writer.add_frame(images[i % 50], rows[i % 50])
            i += 1
            print(i, flush=True)
""")


def test_sigkill_mid_recording_leaves_only_partial(tmp_path):
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), str(REPO / "tests")],
        stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO)
    video = out / "crash" / "crash_0_00000.partial" / VIDEO_FILE
    try:
        for line in child.stdout:
            # kill once 40 frames are in and ffmpeg has flushed its first fragment
            frames = int(line)
            if frames >= 40 and video.is_file() and b"moof" in video.read_bytes():
                break
            assert frames < 5000, "ffmpeg never flushed a fragment"
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the recorder and its ffmpeg, at once
        child.wait()
    assert child.returncode == -signal.SIGKILL
    finished, partial = find_episodes(out)
    assert finished == [] and partial == [out / "crash" / "crash_0_00000.partial"]
    assert sorted(p.name for p in (out / "crash").iterdir()) == ["crash_0_00000.partial"]
    problems = validate_episode(partial[0])
    assert len(problems) == 1 and "unfinished" in problems[0].message
    assert len(list(read_frames(video, strict=False))) > 0
    salvaged = read_episode(partial[0], allow_partial=True)
    assert len(salvaged.data["frame"]) >= 40  # every row written before the kill survived


def _recorded_video(path: Path, frames: int) -> Path:
    """A video another program recorded (as OBS records GTA V)."""
    from datagen.video import H264Writer

    with H264Writer(path, 64, 48, 10) as writer:
        for frame in synthetic_frames(frames, 64, 48):
            writer.write(frame)
    return path


def test_write_episode_adopts_a_recorded_video(tmp_path):
    source = _recorded_video(tmp_path / "obs.mp4", 12)
    rows = synthetic_rows(12, extra_columns=("game_ms",))

    def place(dest: Path) -> int:
        dest.write_bytes(source.read_bytes())
        return probe(dest).frames

    path = write_episode(tmp_path / "out", meta(backend="gta"), rows, place, ("game_ms",))
    assert validate_episode(path) == []
    ep = read_episode(path)
    assert ep.meta.frames == 12 and ep.columns[-1] == "game_ms"
    assert ep.data["pos_y"].tolist() == [r["pos_y"] for r in rows]
    assert source.exists()  # the caller decides what happens to its input


def test_write_episode_checks_rows_before_touching_the_video_and_keeps_a_mismatch_partial(
        tmp_path):
    source = _recorded_video(tmp_path / "obs.mp4", 12)
    placed = []

    def place(dest: Path) -> int:
        placed.append(dest)
        dest.write_bytes(source.read_bytes())
        return probe(dest).frames

    bad = synthetic_rows(12)
    bad[5]["qw"] = float("nan")
    with pytest.raises(EpisodeError, match="frame 5: qw must be finite"):
        write_episode(tmp_path / "out", meta(), bad, place)
    assert placed == []
    with pytest.raises(EpisodeError, match="12 video frames but 11 CSV rows; left unfinished"):
        write_episode(tmp_path / "out", meta(), synthetic_rows(11), place)
    assert find_episodes(tmp_path / "out") == (
        [], [tmp_path / "out" / "synth" / "synth_0_00000.partial"])
    with pytest.raises(EpisodeError, match="no frames"):
        write_episode(tmp_path / "out", meta(), [], place)
