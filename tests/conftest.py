from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgerag import Engine, EngineConfig
from edgerag.index.base import IndexConfig

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))


@pytest.fixture
def engine():
    """In-memory collection with the hashing encoder and the exact index: plumbing tests."""
    with Engine.open(":memory:", FAST) as eng:
        yield eng


@pytest.fixture
def disk_config() -> EngineConfig:
    return EngineConfig(
        encoder="hash", index=IndexConfig(backend="faiss", quantization="int8"), checkpoint_ops=5
    )


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A few small real text files."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "pump.md").write_text(
        "# Pump seal\n\nReplace the mechanical seal when the pump leaks at the shaft. "
        "Torque the gland bolts to 25 Nm in a cross pattern.\n"
    )
    (d / "alarms.txt").write_text(
        "Alarm E-107 means the discharge pressure is above the trip limit. "
        "Check the discharge valve and the pressure transmitter.\n"
    )
    (d / "grease.html").write_text(
        "<html><head><title>Lubrication</title></head><body><h1>Lubrication</h1>"
        "<p>Replace the bearing grease every 2000 operating hours with 15 g of NLGI 2 grease.</p>"
        "<script>var tracking = 1;</script></body></html>"
    )
    return d
