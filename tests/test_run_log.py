"""What a run shows while it trains: metrics.jsonl, TensorBoard scalars and the progress bar."""

from __future__ import annotations

import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training.run_log import METRICS_FILE, TENSORBOARD_DIR, RunLog


def scalars(run) -> dict[str, list[tuple[int, float]]]:
    board = EventAccumulator(str(run / TENSORBOARD_DIR))
    board.Reload()
    return {tag: [(e.step, e.value) for e in board.Scalars(tag)]
            for tag in board.Tags()["scalars"]}


def test_records_reach_the_log_tensorboard_and_the_bar(tmp_path, capsys):
    log = RunLog(tmp_path, master=True, steps=3, step=0, tensorboard=True, progress=True,
                 group=lambda key: "val" if key.startswith("val") else "train")
    for step in (1, 2, 3):
        log.emit({"step": step, "loss": 1.0 / step, **({"val_loss": 0.5} if step == 2 else {})})
        log.advance(loss=f"{1.0 / step:.4f}")
    log.close()
    rows = [json.loads(x) for x in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[1]["val_loss"] == 0.5
    got = scalars(tmp_path)
    # TensorBoard keeps float32
    assert [(s, round(v, 6)) for s, v in got["train/loss"]] == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    assert got["val/val_loss"] == [(2, 0.5)]
    bar = capsys.readouterr().err
    assert "3/3" in bar and "loss=0.3333" in bar


def test_a_resumed_run_replaces_what_followed_its_checkpoint(tmp_path):
    first = RunLog(tmp_path, master=True, steps=4, step=0, tensorboard=True, progress=False,
                   group=lambda key: "train")
    for step in (1, 2, 3):  # killed after step 3, its checkpoint at step 2
        first.emit({"step": step, "loss": float(step)})
    first.close()
    again = RunLog(tmp_path, master=True, steps=4, step=2, tensorboard=True, progress=False,
                   group=lambda key: "train")
    for step in (3, 4):
        again.emit({"step": step, "loss": 10.0 * step})
    again.close()
    assert scalars(tmp_path)["train/loss"] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_other_ranks_write_nothing(tmp_path, capsys):
    log = RunLog(tmp_path, master=False, steps=2, step=0, tensorboard=True, progress=True,
                 group=lambda key: "train")
    log.emit({"step": 1, "loss": 1.0})
    log.advance(loss="1.0")
    log.close()
    assert not list(tmp_path.iterdir()) and capsys.readouterr().err == ""
