"""What a training run shows and keeps of every step: ``metrics.jsonl``, TensorBoard, a bar.

Rank 0 appends one JSON line per record to ``<run>/metrics.jsonl``, writes each number as a
TensorBoard scalar under ``<group>/<name>`` (``group(name)`` picks it; with ``tensorboard``) in
``<run>/tensorboard``, and moves a tqdm bar (loss, it/s, ETA; with ``progress``). Other ranks
keep nothing. A resumed run reopens the same files: TensorBoard drops what it had logged after
the resumed step (``purge_step``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class RunLog:
    def __init__(self, out: Path, *, master: bool, steps: int, step: int, tensorboard: bool,
                 progress: bool, group: Callable[[str], str]) -> None:
        self.group = group
        self._file = open(out / METRICS_FILE, "a") if master else None  # noqa: SIM115 (close)
        self._board = None
        if master and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._board = SummaryWriter(str(out / TENSORBOARD_DIR),
                                        purge_step=step + 1 if step else None)
        self._bar = tqdm(total=steps, initial=step, unit="step", dynamic_ncols=True,
                         disable=not (master and progress))

    def emit(self, record: dict) -> None:
        """Keep ``record`` (its ``step`` and numbers)."""
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self._board is not None:
            for key, value in record.items():
                if key != "step":
                    self._board.add_scalar(f"{self.group(key)}/{key}", value, record["step"])

    def advance(self, **shown: str) -> None:
        """One more step on the bar, with ``shown`` beside it."""
        self._bar.set_postfix(**shown)
        self._bar.update()

    def close(self) -> None:
        self._bar.close()
        if self._file is not None:
            self._file.close()
        if self._board is not None:
            self._board.close()
