"""Measure the composer's "not found" thresholds: answered in-domain vs refused out-of-domain.

In-domain: Zaragoza and perlfaq questions against their own answers, kx40 table questions
against the demo corpus. Out-of-domain: the kx40 questions against the perlfaq+Zaragoza answers,
perlfaq questions against the demo corpus. For each (min_coverage, min_cosine) pair the script
prints the share of in-domain questions answered with the gold and the share of out-of-domain
questions refused. Uses the collections scripts/fit_fusion.py builds.

    cd scripts && PYTHONPATH=../src ../.venv/bin/python measure_not_found.py
"""

from __future__ import annotations

from fit_composer import CachedEncoder
from fit_fusion import CACHE, _bench

from edgerag import Engine
from edgerag.generation.extractive import NOT_FOUND, ExtractiveGenerator


def main() -> None:
    bench = _bench()
    qa = bench.load_perlfaq() + bench.load_zaragoza()
    table = bench.load_table_set()
    faq, demo = Engine.open(CACHE / "fit-faq"), Engine.open(CACHE / "fit-demo")
    encoders = {id(faq): CachedEncoder(faq.encoder), id(demo): CachedEncoder(demo.encoder)}
    perl = [q for q in qa if q.set == "perlfaq"][::4]
    zara = [q for q in qa if q.set == "zaragoza"][::6]
    runs = {
        "in: zaragoza/perlfaq vs own answers": (faq, perl + zara, True),
        "in: kx40 vs demo corpus": (demo, table, True),
        "out: kx40 vs FAQ answers": (faq, table, False),
        "out: perlfaq vs demo corpus": (demo, perl, False),
    }
    gathered = {}
    for name, (engine, questions, _) in runs.items():
        enc = encoders[id(engine)]
        gathered[name] = [
            (q, engine.search(q.question, k=10).hits, enc.encode([q.question])[0], enc)
            for q in questions
        ]
    print("| min_coverage | min_cosine | " + " | ".join(runs) + " |")
    print("|---:|---:|" + "---:|" * len(runs))
    for cov in (0.4, 0.5, 0.6):
        for cos in (0.4, 0.45, 0.5, 0.55):
            gen = ExtractiveGenerator(min_coverage=cov, min_cosine=cos)
            cells = []
            for name, (_, _, inside) in runs.items():
                ok = 0
                for q, hits, qvec, enc in gathered[name]:
                    answer = gen.compose(q.question, hits, enc, qvec)
                    if inside:
                        ok += bench.gold_in(q, answer)
                    else:
                        ok += answer == NOT_FOUND
                cells.append(f"{ok / len(gathered[name]):.2f}")
            print(f"| {cov} | {cos} | " + " | ".join(cells) + " |")
    faq.close()
    demo.close()


if __name__ == "__main__":
    main()
