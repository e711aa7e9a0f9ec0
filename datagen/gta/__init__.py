"""GTA V recorder backend (``datagen record --backend gta``, docs/gta.md): a live backend.

The Script Hook V plugin (``gta_scripthook/``) plays the game and streams one message per
rendered frame to the collector (``collector``, wire format in ``messages``); OBS Studio records
the screen (``obs``); ``session`` runs the two together and ``sync`` aligns them into episodes,
with GTA's camera in the contract's frame (``pose``).
"""

from __future__ import annotations

from datagen.backend import Backend
from datagen.gta.session import GtaConfig, record

BACKEND = Backend(
    name="gta", summary="GTA V with the worldforge Script Hook V plugin, captured by OBS Studio",
    config=GtaConfig, record_session=record, task_cpus=1.0)
