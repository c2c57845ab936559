"""Child process for test_multiproc: a writer or a reader on a shared collection.

write DB PREFIX START   ingest PREFIX-<i>.txt forever (every 7th write also deletes an older
                        one); print "ACK <doc_id>" / "DEL <doc_id>" only after the call returned
read DB                 search in a loop; print "SEARCH <n>" now and then
seek DB                 for every doc id read from stdin, ONE dense search filtered to it;
                        print "SEEN <doc_id>" or "MISS <doc_id>" (the parent sends an id only
                        after the writer acknowledged it, so a miss is a lost write)
"""

from __future__ import annotations

import random
import sys
import time
import zlib

from edgerag import Engine


def text_of(doc_id: str) -> bytes:
    token = doc_id.removesuffix(".txt").replace("-", "")
    words = " ".join(f"w{(zlib.crc32(token.encode()) + j) % 89}" for j in range(60))
    return f"{token} maintenance note for unit {token}. {words}".encode()


def write(db: str, prefix: str, start: int) -> None:
    with Engine.open(db) as engine:
        print("READY", flush=True)
        i = start
        while True:
            doc_id = f"{prefix}-{i}.txt"
            report = engine.ingest([(doc_id, text_of(doc_id))])
            assert report.ok, report.errors
            print(f"ACK {doc_id}", flush=True)
            time.sleep(0.02)  # a busy writer, not a flood: the kill tests verify every doc
            if i % 7 == 6:
                old = f"{prefix}-{i - 3}.txt"
                engine.delete(old)
                print(f"DEL {old}", flush=True)
            i += 1


def read(db: str) -> None:
    rng = random.Random()
    with Engine.open(db) as engine:
        print("READY", flush=True)
        n = 0
        while True:
            engine.search(f"maintenance note w{rng.randrange(89)}", k=5, mode="dense")
            n += 1
            if n % 20 == 0:
                print(f"SEARCH {n}", flush=True)


def seek(db: str) -> None:
    with Engine.open(db) as engine:
        print("READY", flush=True)
        for line in sys.stdin:
            doc_id = line.strip()
            token = doc_id.removesuffix(".txt").replace("-", "")
            hits = engine.search(token, k=3, filters={"source": doc_id}, mode="dense").hits
            seen = any(h.doc_id == doc_id for h in hits)
            print(f"{'SEEN' if seen else 'MISS'} {doc_id}", flush=True)


if __name__ == "__main__":
    role, db, *rest = sys.argv[1:]
    if role == "write":
        write(db, rest[0], int(rest[1]))
    elif role == "read":
        read(db)
    else:
        seek(db)
