"""onnxruntime session options shared by every ONNX model edgerag runs (MiniLM, EfficientNet,
CLIP towers, cross-encoders), tuned for a small CPU box shared with other work."""

from __future__ import annotations

import os
from typing import Any

from edgerag._optional import require
from edgerag.errors import ConfigError

OPTIMIZATIONS = ("disable", "basic", "extended", "all")


def session_options(
    threads: int | None = None, spinning: bool = False, optimization: str = "all"
) -> Any:
    """onnxruntime session options for a small shared CPU box.

    ``spinning`` off by default: onnxruntime's intra-op threads otherwise busy-wait after each
    ``run()`` and take the cores from what the query path does next (ANN, FTS5, hydrate) and
    from other processes; measured in ``benchmarks/onnx_options_bench.py`` (docs/notes/perf.md).
    One inter-op thread: the graph is a chain, parallel branches would only add threads.
    """
    if optimization not in OPTIMIZATIONS:
        raise ConfigError(
            f"unknown onnxruntime optimization {optimization!r}; choose one of {OPTIMIZATIONS}"
        )
    ort = require("onnxruntime")
    levels = ort.GraphOptimizationLevel
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "disable": levels.ORT_DISABLE_ALL,
        "basic": levels.ORT_ENABLE_BASIC,
        "extended": levels.ORT_ENABLE_EXTENDED,
        "all": levels.ORT_ENABLE_ALL,
    }[optimization]
    spin = "1" if spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options
