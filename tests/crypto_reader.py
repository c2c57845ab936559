"""A reader process for the key-rotation test: searches an encrypted collection in a loop.

argv: DB QUERY EXPECTED_SOURCE ROTATED_FILE STOP_FILE. The key comes from EDGERAG_KEY_FILE.
Prints READY, then searches until STOP_FILE exists, and prints one JSON line: searches, the
searches done once ROTATED_FILE existed, errors, misses.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edgerag import Engine


def main() -> None:
    db, query, expected = sys.argv[1:4]
    rotated, stop = Path(sys.argv[4]), Path(sys.argv[5])
    searches, after, misses, errors = 0, 0, 0, []
    with Engine.open(db) as engine:
        print("READY", flush=True)
        while not stop.exists():
            late = rotated.exists()
            try:
                hits = engine.search(query, k=3).hits
            except Exception as exc:  # the test asserts there are none; report what they were
                errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.02)
                continue
            searches += 1
            after += late
            misses += not hits or Path(hits[0].source).name != expected
    print(
        json.dumps(
            {"searches": searches, "after_rotation": after, "misses": misses, "errors": errors[:5]}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
