"""PII scrubbing: precision/recall per type on the seeded synthetic set, and false positives on
the demo corpus (which entities — part numbers, alarm codes, values — would a scrub destroy?).

    PYTHONPATH=src python benchmarks/pii_bench.py [--n 1000] [--seed 13] [--regions US,GB,...]

A predicted span is a true positive when it overlaps a labelled span of the same type; a
labelled span no prediction of its type overlaps is a miss. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from edgerag.entities import extract as extract_entities
from edgerag.ingest.extract import extract
from edgerag.ingest.limits import Limits
from edgerag.privacy.pii import KINDS, Detector, Scrubber, Span
from edgerag.privacy.synthetic import REGIONS, generate

DEMO = Path(__file__).resolve().parent.parent / "demo" / "corpus"


def _overlaps(a: Span, b: Span) -> bool:
    return a.kind == b.kind and a.start < b.end and b.start < a.end


def score(detector: Detector, n: int, seed: int) -> tuple[dict[str, Counter[str]], float, int]:
    """Per type {tp, fp, fn}; mean ms per snippet; snippets that are hard negatives only."""
    snippets = generate(n, seed)
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    started = time.perf_counter()
    predictions = [detector.find(s.text) for s in snippets]
    per_ms = (time.perf_counter() - started) * 1000 / len(snippets)
    for snippet, predicted in zip(snippets, predictions, strict=True):
        for p in predicted:
            hit = any(_overlaps(p, g) for g in snippet.spans)
            counts[p.kind]["tp" if hit else "fp"] += 1
        for g in snippet.spans:
            if not any(_overlaps(p, g) for p in predicted):
                counts[g.kind]["fn"] += 1
    negatives = sum(1 for s in snippets if not s.spans)
    return counts, per_ms, negatives


def demo_check(detector: Detector) -> tuple[Counter[str], list[str], list[tuple[str, str]]]:
    """Redactions by type on the demo corpus, the entities a scrub removes, and what was
    redacted (the corpus is fictional, so printing the values is fine here)."""
    redacted: Counter[str] = Counter()
    lost: list[str] = []
    shown: list[tuple[str, str]] = []
    for path in sorted(DEMO.iterdir()):
        doc = extract(path.name, path.read_bytes(), Limits())
        for _, text in doc.pages:
            spans = detector.find(text)
            scrubber = Scrubber(detector)
            clean = scrubber(text)
            redacted.update(scrubber.counts)
            shown += [(s.kind, text[s.start : s.end]) for s in spans]
            before = {e.name for e in extract_entities(text)}
            after = {e.name for e in extract_entities(clean)}
            lost += [f"{path.name}: {name}" for name in sorted(before - after)]
    return redacted, lost, shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--regions", default=",".join(REGIONS))
    args = parser.parse_args()
    detector = Detector(regions=tuple(r for r in args.regions.split(",") if r))
    counts, per_ms, negatives = score(detector, args.n, args.seed)
    print(f"synthetic set: {args.n} snippets (seed {args.seed}), {negatives} hard negatives only;")
    print(f"phone regions {','.join(detector.regions)}; {per_ms:.2f} ms per snippet\n")
    print("| type | labelled | found | false pos. | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        c = counts[kind]
        labelled, found = c["tp"] + c["fn"], c["tp"] + c["fp"]
        precision = c["tp"] / found if found else float("nan")
        recall = c["tp"] / labelled if labelled else float("nan")
        print(f"| {kind} | {labelled} | {found} | {c['fp']} | {precision:.3f} | {recall:.3f} |")
    redacted, lost, shown = demo_check(detector)
    print(f"\ndemo corpus ({DEMO.name}/): redactions {dict(redacted) or 'none'}")
    print(f"entities lost to scrubbing: {len(lost)}" + ("" if not lost else f" {lost}"))
    for kind, value in shown:
        print(f"  redacted {kind}: {value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
