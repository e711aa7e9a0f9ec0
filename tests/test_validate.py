"""validate_episode: each kind of broken episode is caught, with a message naming where and what.

Every broken episode is a fresh copy of a valid one (the ``good_episode`` fixture) with one edit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import synthetic_frames

from datagen.episode import ACTIONS_FILE, META_FILE, VIDEO_FILE
from datagen.episode_check import Problem, validate_episode
from datagen.video import H264Writer


def edit_cell(path, row: int, column: str, value) -> None:
    """Replace one cell of actions.csv (``row`` counts data rows from 0)."""
    lines = (path / ACTIONS_FILE).read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value if isinstance(value, str) else repr(value)
    lines[row + 1] = ",".join(cells)
    (path / ACTIONS_FILE).write_text("\n".join(lines) + "\n")


def cell(path, row: int, column: str) -> float:
    lines = (path / ACTIONS_FILE).read_text().splitlines()
    return float(lines[row + 1].split(",")[lines[0].split(",").index(column)])


def edit_meta(path, **changes) -> None:
    meta = json.loads((path / META_FILE).read_text())
    meta.update(changes)
    (path / META_FILE).write_text(json.dumps(meta))


def only(problems: list[Problem], where: str) -> Problem:
    """The one problem, checking it is reported at ``where``."""
    assert len(problems) == 1, [str(p) for p in problems]
    assert problems[0].where == where, str(problems[0])
    return problems[0]


def test_valid_episode_has_no_problems(good_episode):
    assert validate_episode(good_episode.path) == []
    assert validate_episode(good_episode.path, decode_video=False) == []


@pytest.mark.parametrize("name", [VIDEO_FILE, ACTIONS_FILE, META_FILE])
def test_missing_file(good_episode, name):
    (good_episode.path / name).unlink()
    problems = validate_episode(good_episode.path)
    assert Problem(str(good_episode.path), name, "missing") in problems


def test_wrong_row_count_states_both_numbers(good_episode):
    path = good_episode.path
    lines = (path / ACTIONS_FILE).read_text().splitlines()
    (path / ACTIONS_FILE).write_text("\n".join(lines[:-1]) + "\n")  # drop the last row
    messages = {p.where: p.message for p in validate_episode(path)}
    assert messages == {ACTIONS_FILE: "23 rows but meta.json says frames = 24",
                        VIDEO_FILE: "decodes to 24 frames but actions.csv has 23 rows"}


def test_video_with_fewer_frames_than_rows(good_episode):
    path = good_episode.path
    with H264Writer(path / VIDEO_FILE, 64, 48, 10) as writer:
        for frame in synthetic_frames(20, 64, 48):
            writer.write(frame)
    p = only(validate_episode(path), VIDEO_FILE)
    assert p.message == "decodes to 20 frames but actions.csv has 24 rows"
    assert validate_episode(path, decode_video=False) == []  # counting needs decoding


def test_nan_names_column_and_first_row(good_episode):
    edit_cell(good_episode.path, 5, "vel_y", "nan")
    edit_cell(good_episode.path, 9, "vel_y", "inf")
    p = only(validate_episode(good_episode.path), "actions.csv row 5 column vel_y")
    assert "nan" in p.message and "2 non-finite values" in p.message


def test_non_unit_quaternion(good_episode):
    path = good_episode.path
    edit_cell(path, 3, "qw", cell(path, 3, "qw") * 1.01)
    problems = validate_episode(path)
    p = next(p for p in problems if "norm" in p.message)
    assert p.where == "actions.csv row 3 column qw" and "must be 1 within 1e-06" in p.message


def test_non_monotonic_time(good_episode):
    path = good_episode.path
    edit_cell(path, 6, "t", cell(path, 5, "t"))
    problems = validate_episode(path)
    assert any(p.where == "actions.csv row 6 column t" and "time does not increase: 0.5 after "
               "0.5" in p.message for p in problems), [str(p) for p in problems]


def test_time_not_frame_over_fps(good_episode):
    path = good_episode.path
    for row in range(24):
        edit_cell(path, row, "t", row / 12)  # increasing, but at the wrong rate
    p = only(validate_episode(path), "actions.csv row 23 column t")
    assert "expected frame / fps = 2.3" in p.message and "23 rows" in p.message


def test_bad_header_names_the_first_difference(good_episode):
    path = good_episode.path
    text = (path / ACTIONS_FILE).read_text()
    (path / ACTIONS_FILE).write_text(text.replace("key_a,key_d", "key_d,key_a", 1))
    p = only(validate_episode(path), "actions.csv header")
    assert "column 4 is 'key_d', expected 'key_a'" in p.message


def test_truncated_header(good_episode):
    path = good_episode.path
    lines = (path / ACTIONS_FILE).read_text().splitlines()
    (path / ACTIONS_FILE).write_text(",".join(lines[0].split(",")[:-2]) + "\n")
    problems = validate_episode(path)
    assert any(p.where == "actions.csv header" and "missing vel_z, fov" in p.message
               for p in problems)


def test_alignment_identity_broken(good_episode):
    path = good_episode.path
    edit_cell(path, 7, "mouse_dx", cell(path, 7, "mouse_dx") + 0.5)
    p = only(validate_episode(path), "actions.csv row 7 column mouse_dx")
    assert "alignment identity broken" in p.message and "largest error 0.5" in p.message


def test_mouse_dy_identity_and_row_zero(good_episode):
    path = good_episode.path
    edit_cell(path, 0, "mouse_dy", 1.0)
    edit_cell(path, 11, "mouse_dy", cell(path, 11, "mouse_dy") - 2.0)
    wheres = {p.where for p in validate_episode(path)}
    assert wheres == {"actions.csv row 0 column mouse_dy", "actions.csv row 11 column mouse_dy"}


def test_angles_disagree_with_quaternion(good_episode):
    path = good_episode.path
    edit_cell(path, 4, "roll", 2.0)  # roll is not part of the mouse identities
    p = only(validate_episode(path), "actions.csv row 4 column yaw")
    assert "disagree with the quaternion" in p.message and "by 1.99999999" in p.message


def test_keys_must_be_zero_or_one(good_episode):
    edit_cell(good_episode.path, 2, "key_shift", "2")
    p = only(validate_episode(good_episode.path), "actions.csv row 2 column key_shift")
    assert "keys must be 0 or 1" in p.message


def test_frame_column_must_count(good_episode):
    edit_cell(good_episode.path, 3, "frame", "4")
    p = only(validate_episode(good_episode.path), "actions.csv row 3 column frame")
    assert "is 4, expected 3" in p.message


def test_fov_range(good_episode):
    edit_cell(good_episode.path, 8, "fov", 180.0)
    p = only(validate_episode(good_episode.path), "actions.csv row 8 column fov")
    assert "must be in (0, 180)" in p.message


def test_unparsable_cell_and_short_row(good_episode):
    path = good_episode.path
    edit_cell(path, 2, "pos_z", "tall")
    p = only(validate_episode(path), "actions.csv row 2 column pos_z")
    assert p.message == "'tall' is not a number"
    lines = (path / ACTIONS_FILE).read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0]
    (path / ACTIONS_FILE).write_text("\n".join(lines) + "\n")
    assert "24 fields, the header has 25" in only(validate_episode(path),
                                                  "actions.csv row 3").message


def test_wrong_video_size(good_episode):
    path = good_episode.path
    with H264Writer(path / VIDEO_FILE, 32, 48, 10) as writer:
        for frame in synthetic_frames(24, 32, 48):
            writer.write(frame)
    p = only(validate_episode(path), VIDEO_FILE)
    assert p.message == "size is 32x48 but meta.json says 64x48"


def test_wrong_video_rate(good_episode):
    path = good_episode.path
    with H264Writer(path / VIDEO_FILE, 64, 48, 24) as writer:
        for frame in synthetic_frames(24, 64, 48):
            writer.write(frame)
    p = only(validate_episode(path), VIDEO_FILE)
    assert p.message == "frame rate is 24.0 but meta.json says 10"


def test_meta_problems(good_episode):
    path = good_episode.path
    edit_meta(path, format="worldforge.episode/2")
    assert "format is 'worldforge.episode/2'" in only(validate_episode(path), META_FILE).message
    edit_meta(path, format="worldforge.episode/1", fps=-5)
    assert "fps must be positive, got -5" in only(validate_episode(path), META_FILE).message
    (path / META_FILE).write_text("{not json")
    assert "not valid JSON" in only(validate_episode(path), META_FILE).message


def test_episode_id_must_match_folder(good_episode):
    path = good_episode.path
    moved = path.rename(path.with_name("synth_0_00099"))
    p = only(validate_episode(moved), META_FILE)
    assert "'synth_0_00000' does not match the folder name 'synth_0_00099'" in p.message


def test_partial_and_missing_folders(good_episode, tmp_path):
    partial = good_episode.path.rename(good_episode.path.with_name("synth_0_00000.partial"))
    assert "unfinished episode" in only(validate_episode(partial), "folder").message
    assert "no such episode folder" in only(validate_episode(tmp_path / "x"), "folder").message


def test_all_problems_are_reported_at_once(good_episode):
    path = good_episode.path
    edit_cell(path, 5, "vel_y", "nan")
    edit_cell(path, 8, "fov", -1.0)
    (path / VIDEO_FILE).unlink()
    wheres = {p.where for p in validate_episode(path)}
    assert wheres == {"actions.csv row 5 column vel_y", "actions.csv row 8 column fov",
                      VIDEO_FILE}


@pytest.mark.parametrize("name", [VIDEO_FILE, ACTIONS_FILE, META_FILE])
@pytest.mark.parametrize("seed", range(3))
def test_garbage_files_are_problems_not_crashes(good_episode, name, seed):
    rng = np.random.default_rng(seed)
    path = good_episode.path / name
    data = bytearray(path.read_bytes())
    cut = int(rng.integers(0, len(data)))
    data[cut:cut + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data[: int(rng.integers(cut, len(data) + 1))]))
    problems = validate_episode(good_episode.path)
    assert all(isinstance(p, Problem) and p.message for p in problems)
    if name != VIDEO_FILE:  # a video hit may land in bytes the decoder conceals
        assert any(p.where.startswith(name) for p in problems), [str(p) for p in problems]


def test_mouse_delta_off_by_a_full_turn_is_caught(good_episode):
    """The yaw difference is wrapped, the error is not: 360 degrees too much is wrong."""
    path = good_episode.path
    edit_cell(path, 5, "mouse_dx", cell(path, 5, "mouse_dx") + 360.0)
    p = only(validate_episode(path), "actions.csv row 5 column mouse_dx")
    assert "largest error 360" in p.message


def test_scene_must_match_the_scene_folder(good_episode):
    edit_meta(good_episode.path, scene="elsewhere")
    p = only(validate_episode(good_episode.path), "meta.json")
    assert "scene 'elsewhere'" in p.message and "<out>/<scene>/<episode_id>/" in p.message


def test_unknown_extra_columns_are_kept_not_judged(good_episode):
    """Recorders may append columns; readers keep what they do not know, text included."""
    from datagen.episode import read_episode

    path = good_episode.path
    lines = (path / ACTIONS_FILE).read_text().splitlines()
    lines = [lines[0] + ",note,gear"] + [f"{line},hello {i},{i % 3}"
                                          for i, line in enumerate(lines[1:])]
    (path / ACTIONS_FILE).write_text("\n".join(lines) + "\n")
    assert validate_episode(path) == []
    episode = read_episode(path)
    assert episode.data["note"][2] == "hello 2"
    assert episode.data["gear"].tolist()[:4] == [0.0, 1.0, 2.0, 0.0]
