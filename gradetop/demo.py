"""The demo workflow: a small ML pipeline in numpy alone, shaped like the real thing.

Run it with `gradetop demo` (monitored) or `python -m gradetop.demo` (plain).
It writes data shards to a temporary folder, loads them back with a pool of
worker processes, preprocesses, trains a two-layer network with explicit
forward / backward / optimizer steps, evaluates, and saves a checkpoint.
No GPU, no download; about 30 s at --scale 1 on two cores.

Training, evaluation and the checkpoint are marked with gradetop.phase; data
generation, loading and preprocessing are not, so that gradetop finds them
itself (automatic phases): the demo shows both.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time

import numpy as np

import gradetop

FEATURES = 32
CLASSES = 4


def generate_shards(folder: str, shards: int, rows: int, rng: np.random.Generator) -> list[str]:
    """Write a synthetic classification data set as .npz shards (the 'download')."""
    centers = rng.normal(0, 0.6, size=(CLASSES, FEATURES))
    paths = []
    for i in range(shards):
        labels = rng.integers(0, CLASSES, size=rows)
        x = centers[labels] + rng.normal(0, 2.0, size=(rows, FEATURES))
        path = os.path.join(folder, f"shard-{i:03d}.npz")
        np.savez_compressed(path, x=x.astype(np.float32), y=labels)
        paths.append(path)
    return paths


def decode_shard(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one shard and 'decode' it: the per-sample work a data loader does."""
    with np.load(path) as shard:
        x, y = shard["x"], shard["y"]
    # Stand-in for image decoding / tokenising: a little CPU per row.
    x = np.tanh(x / 4.0) * 4.0
    for _ in range(250):
        x = x + 0.01 * np.sin(x)
    return x, y


def load_data(paths: list[str], workers: int) -> tuple[np.ndarray, np.ndarray]:
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(decode_shard, paths)
    else:
        parts = [decode_shard(p) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


def add_interactions(x: np.ndarray, pairs: int) -> np.ndarray:
    """Feature engineering done row-block by row-block, as Python-heavy preprocessing often is."""
    blocks = []
    for start in range(0, len(x), 256):
        block = x[start : start + 256]
        extra = [block[:, i : i + 1] * block[:, (i + 1) % FEATURES : (i + 1) % FEATURES + 1] for i in range(pairs)]
        blocks.append(np.hstack([block, *extra]))
    return np.vstack(blocks)


def preprocess(x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    x = standardize(x)
    x = add_interactions(x, pairs=32)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.85 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


class Model:
    def __init__(self, n_in: int, hidden: int, rng: np.random.Generator) -> None:
        self.w1 = rng.normal(0, np.sqrt(2 / n_in), size=(n_in, hidden)).astype(np.float32)
        self.b1 = np.zeros(hidden, dtype=np.float32)
        self.w2 = rng.normal(0, np.sqrt(2 / hidden), size=(hidden, CLASSES)).astype(np.float32)
        self.b2 = np.zeros(CLASSES, dtype=np.float32)
        self.params = ["w1", "b1", "w2", "b2"]


def forward(model: Model, x: np.ndarray):
    h = np.maximum(x @ model.w1 + model.b1, 0)
    logits = h @ model.w2 + model.b2
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return h, p


def backward(model: Model, x: np.ndarray, y: np.ndarray, h: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    grads = {"w2": h.T @ d, "b2": d.sum(axis=0)}
    dh = (d @ model.w2.T) * (h > 0)
    grads["w1"] = x.T @ dh
    grads["b1"] = dh.sum(axis=0)
    return grads


class Adam:
    def __init__(self, model: Model, lr: float = 1e-3) -> None:
        self.lr, self.t = lr, 0
        self.m = {k: np.zeros_like(getattr(model, k)) for k in model.params}
        self.v = {k: np.zeros_like(getattr(model, k)) for k in model.params}

    def step(self, model: Model, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for k, g in grads.items():
            self.m[k] = 0.9 * self.m[k] + 0.1 * g
            self.v[k] = 0.999 * self.v[k] + 0.001 * g * g
            m_hat = self.m[k] / (1 - 0.9**self.t)
            v_hat = self.v[k] / (1 - 0.999**self.t)
            setattr(model, k, getattr(model, k) - self.lr * m_hat / (np.sqrt(v_hat) + 1e-8))


@gradetop.phase("train")
def train(model: Model, data, epochs: int, batch: int, rng: np.random.Generator) -> None:
    x, y = data
    opt = Adam(model)
    for epoch in range(epochs):
        with gradetop.phase(f"epoch {epoch + 1}"):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                idx = order[start : start + batch]
                h, p = forward(model, x[idx])
                grads = backward(model, x[idx], y[idx], h, p)
                opt.step(model, grads)
        print(f"epoch {epoch + 1}/{epochs} done", flush=True)


@gradetop.phase("evaluate")
def evaluate(model: Model, data, passes: int = 30) -> float:
    """Accuracy of the averaged prediction over noisy passes (test-time augmentation)."""
    x, y = data
    rng = np.random.default_rng(1)
    votes = np.zeros((len(x), CLASSES), dtype=np.float32)
    for _ in range(passes):
        noisy = x + rng.normal(0, 0.1, size=x.shape).astype(np.float32)
        for start in range(0, len(x), 512):
            _, p = forward(model, noisy[start : start + 512])
            votes[start : start + 512] += p
    return float((votes.argmax(axis=1) == y).mean())


def save_checkpoint(model: Model, folder: str) -> str:
    path = os.path.join(folder, "checkpoint.npz")
    with open(path, "wb") as f:
        np.savez(f, **{k: getattr(model, k) for k in model.params})
        f.flush()
        os.fsync(f.fileno())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradetop.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="work multiplier (0.1 runs in a few seconds)")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes (1: load in-process)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    scale = max(args.scale, 0.01)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gradetop-demo-") as folder:
        print("generating data", flush=True)
        paths = generate_shards(folder, shards=max(2, int(40 * scale)), rows=6000, rng=rng)
        print("loading data", flush=True)
        x, y = load_data(paths, args.workers)
        print("preprocessing", flush=True)
        train_set, val_set = preprocess(x, y, rng)
        model = Model(train_set[0].shape[1], hidden=384, rng=rng)
        print("training", flush=True)
        train(model, train_set, epochs=max(1, int(12 * scale)), batch=64, rng=rng)
        print("evaluating", flush=True)
        accuracy = evaluate(model, val_set)
        print("saving checkpoint", flush=True)
        with gradetop.phase("checkpoint"):
            save_checkpoint(model, folder)
    print(f"validation accuracy {accuracy:.3f}; {time.time() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
