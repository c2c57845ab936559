"""Child process for test_crash: ingests (and sometimes deletes) forever, acknowledging each
write on stdout only after ``Engine.ingest``/``delete`` returned. The parent SIGKILLs it."""

from __future__ import annotations

import sys

from edgerag import Engine, EngineConfig
from edgerag.index.base import IndexConfig


def main(db: str, start: int) -> None:
    config = EngineConfig(
        encoder="hash", index=IndexConfig(backend="faiss", quantization="int8"), checkpoint_ops=3
    )
    with Engine.open(db, config) as engine:
        print("READY", flush=True)
        i = start
        while True:
            text = f"crashdoc{i} " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(300))
            report = engine.ingest([(f"doc-{i}.txt", text.encode())])
            assert report.ok, report.errors
            print(f"ACK doc-{i}.txt", flush=True)
            if i % 5 == 4:
                engine.delete(f"doc-{i - 2}.txt")
                print(f"DEL doc-{i - 2}.txt", flush=True)
            i += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
