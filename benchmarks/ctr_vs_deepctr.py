"""Benchmark toyalgos' DeepFM and DCN-v2 against DeepCTR-Torch 0.3.0 on one synthetic click log.

Both libraries get the same train split of one click log, ``make_click_log(n, generator=g)`` with
``g = torch.Generator().manual_seed(seed)``, the same number of exact passes over it (each epoch a
fresh shuffle, the last batch of an epoch partial), the same optimiser
(Adam, constant learning rate), batch size, embedding dimension (8), MLP (64, 32), two cross layers
for DCN-v2, and no regularisation or dropout. Only training is timed (``time.perf_counter``
around ``toyalgos.core.train`` and ``model.fit``); AUC and log loss are then computed on the test
split with ``toyalgos.recsys.metrics``, next to the Bayes limit (the metrics of the true CTR).

Install the extra first: ``pip install -e ".[bench]"`` (on a CPU-only machine install the CPU torch
wheel before it, see the top-level README). Run from the repository root::

    python benchmarks/ctr_vs_deepctr.py                      # defaults: n = 1_000_000, 1 epoch
    python benchmarks/ctr_vs_deepctr.py --n 200000 --models deepfm --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import torch

from toyalgos.core.train import train
from toyalgos.recsys import ClickLog, DCNv2, DeepFM, bce_loss, make_click_log, predict_ctr
from toyalgos.recsys.metrics import auc, log_loss

EMBEDDING_DIM = 8
HIDDEN = (64, 32)
N_CROSS = 2
MODEL_SEED = 1024  # DeepCTR-Torch's default; also used for toyalgos' torch.manual_seed
PREDICT_BATCH = 65_536
MODEL_TITLES = {"deepfm": "DeepFM", "dcn": "DCN-v2"}
THEIRS = "DeepCTR-Torch"
OURS = "toyalgos"


@dataclass
class Result:
    model: str
    library: str
    auc: float
    log_loss: float
    train_s: float  # the fastest of the repeats
    times: list[float]


class EpochBatches:
    """Shuffled minibatches covering every row once per iteration (a fresh permutation each time).

    ``toyalgos.core.train`` cycles an iterable of batches, so ``epochs * len(batches)`` steps are
    exactly ``epochs`` passes over the data, as in DeepCTR's ``DataLoader(shuffle=True)``.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, generator: torch.Generator):
        self.tensors = tuple(tensors)
        self.n = self.tensors[0].shape[0]
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        perm = torch.randperm(self.n, generator=self.generator)
        for idx in perm.split(self.batch_size):
            yield tuple(t[idx] for t in self.tensors)


def score(
    model: str, library: str, test: ClickLog, p: np.ndarray | torch.Tensor, times: list[float]
) -> Result:
    return Result(model, library, auc(test.labels, p), log_loss(test.labels, p), min(times), times)


def run_toyalgos(name: str, tr: ClickLog, test: ClickLog, args: argparse.Namespace) -> Result:
    kw = dict(n_dense=len(tr.dense_names), k=EMBEDDING_DIM, hidden=HIDDEN, field_names=tr.field_names)
    times = []
    for _ in range(args.repeats):  # every repeat: the same seeds, so the same model
        torch.manual_seed(MODEL_SEED)
        if name == "deepfm":
            model = DeepFM(list(tr.cardinalities), **kw)
        else:
            model = DCNv2(list(tr.cardinalities), n_cross=N_CROSS, **kw)
        batches = EpochBatches(
            (tr.sparse, tr.dense, tr.labels), args.batch_size, torch.Generator().manual_seed(args.seed)
        )
        t0 = time.perf_counter()
        train(
            model,
            bce_loss,
            batches,
            steps=args.epochs * len(batches),
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer="adam",
            lr_schedule="constant",
            progress=False,
        )
        times.append(time.perf_counter() - t0)
    p = predict_ctr(model, test.sparse, test.dense, batch_size=PREDICT_BATCH)
    return score(MODEL_TITLES[name], OURS, test, p, times)


def deepctr_inputs(log: ClickLog) -> dict[str, np.ndarray]:
    """DeepCTR's input format: one numpy column per feature name."""
    x = {f: log.sparse[:, i].numpy() for i, f in enumerate(log.field_names)}
    x.update({f: log.dense[:, i].numpy() for i, f in enumerate(log.dense_names)})
    return x


def run_deepctr(name: str, tr: ClickLog, test: ClickLog, args: argparse.Namespace) -> Result:
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import DCN
    from deepctr_torch.models import DeepFM as DeepCTRDeepFM

    columns = [
        SparseFeat(f, vocabulary_size=c, embedding_dim=EMBEDDING_DIM)
        for f, c in zip(tr.field_names, tr.cardinalities, strict=True)
    ] + [DenseFeat(f, 1) for f in tr.dense_names]
    common = dict(
        dnn_hidden_units=HIDDEN,
        l2_reg_linear=0.0,
        l2_reg_embedding=0.0,
        l2_reg_dnn=0.0,
        init_std=args.deepctr_init_std,
        seed=MODEL_SEED,  # BaseModel calls torch.manual_seed(seed)
        dnn_dropout=0,
        task="binary",
        device="cpu",
    )
    x_train, y_train = deepctr_inputs(tr), tr.labels.numpy()
    times = []
    for _ in range(args.repeats):  # every repeat: the same seeds, so the same model
        if name == "deepfm":
            model = DeepCTRDeepFM(columns, columns, use_fm=True, **common)
        else:
            # No linear feature columns: toyalgos' DCNv2 (like the DCN-v2 paper) has no separate
            # first-order part, only [cross(x0), MLP(x0)] -> linear -> logit.
            model = DCN(
                [], columns, cross_num=N_CROSS, cross_parameterization="matrix", l2_reg_cross=0.0, **common
            )
        # DCN 0.3.0 does not forward l2_reg_linear to BaseModel (which defaults to 1e-5): drop every
        # regulariser so that both libraries minimise the plain log loss.
        model.regularization_weight.clear()
        assert float(model.get_regularization_loss()) == 0.0
        model.compile(torch.optim.Adam(model.parameters(), lr=args.lr), loss="binary_crossentropy")
        torch.manual_seed(args.seed)  # DataLoader(shuffle=True) draws from the global generator
        with contextlib.redirect_stdout(io.StringIO()):  # fit prints the device and the step count
            t0 = time.perf_counter()
            model.fit(
                x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0, shuffle=True
            )
            times.append(time.perf_counter() - t0)
    p = model.predict(deepctr_inputs(test), batch_size=PREDICT_BATCH)[:, 0]
    return score(MODEL_TITLES[name], f"{THEIRS} {version('deepctr-torch')}", test, p, times)


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"deepctr-torch {version('deepctr-torch')}, Python {platform.python_version()}, {platform.system()}"
    )


def markdown(results: list[Result], bayes: Result) -> str:
    lines = ["| model | library | test AUC | log loss | train time (s) |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.model} | {r.library} | {r.auc:.4f} | {r.log_loss:.4f} | {r.train_s:.1f} |")
    lines.append(f"| Bayes limit (true CTR) | - | {bayes.auc:.4f} | {bayes.log_loss:.4f} | - |")
    lines += [
        "",
        "| model | train time ours / theirs | AUC ours - theirs | log loss ours - theirs |",
        "|---|---|---|---|",
    ]
    for title in dict.fromkeys(r.model for r in results):
        ours = next(r for r in results if r.model == title and r.library == OURS)
        theirs = next(r for r in results if r.model == title and r.library.startswith(THEIRS))
        lines.append(
            f"| {title} | {ours.train_s / theirs.train_s:.2f} | {ours.auc - theirs.auc:+.4f} "
            f"| {ours.log_loss - theirs.log_loss:+.4f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="impressions in all (80%% train, 10%% test)")
    ap.add_argument("--epochs", type=int, default=1, help="passes over the train split")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate, constant, both libraries")
    ap.add_argument("--models", default="deepfm,dcn", help="comma-separated subset of deepfm,dcn")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the click log and of the shuffles")
    ap.add_argument(
        "--repeats", type=int, default=1, help="train each model this many times; report the fastest"
    )
    ap.add_argument(
        "--deepctr-init-std",
        type=float,
        default=1e-4,
        help="DeepCTR's init_std (embeddings, linear and MLP weights); 1e-4 is its default",
    )
    args = ap.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(args.models) - set(MODEL_TITLES)
    if unknown or not args.models:
        ap.error(f"--models must be a comma-separated subset of {','.join(MODEL_TITLES)}, got {args.models}")
    for name in ("n", "epochs", "batch_size", "threads", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.lr <= 0:
        ap.error(f"--lr must be > 0, got {args.lr}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    busy = os.getloadavg()[0]  # before this process does any work
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    tr, _, test, _ = make_click_log(args.n, generator=torch.Generator().manual_seed(args.seed))
    steps_per_epoch = math.ceil(len(tr) / args.batch_size)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(
        f"data: make_click_log(n={args.n}, generator seeded {args.seed}): {len(tr)} train / "
        f"{len(test)} test rows, "
        f"train CTR {tr.labels.mean():.4f}"
    )
    print(
        f"training: Adam lr={args.lr:g} (constant), batch {args.batch_size}, {args.epochs} epoch(s) = "
        f"{args.epochs * steps_per_epoch} steps of exact shuffled passes in both libraries, "
        f"embedding dim {EMBEDDING_DIM}, MLP {HIDDEN}, {N_CROSS} cross layers, no regularisation or "
        f"dropout; DeepCTR init_std={args.deepctr_init_std:g}; train time = fastest of {args.repeats} run(s)"
    )
    if busy >= 1.0:
        print(
            f"warning: 1-min load average {busy:.1f} on {os.cpu_count()} CPUs before the start: other "
            "processes are running, so the train times are not clean (the metrics are unaffected)"
        )
    results = []
    for name in args.models:
        for run in (run_deepctr, run_toyalgos):
            load = os.getloadavg()[0]
            r = run(name, tr, test, args)
            times = ", ".join(f"{t:.1f}" for t in r.times)
            print(
                f"  {r.model} / {r.library}: AUC {r.auc:.4f}, log loss {r.log_loss:.4f}, "
                f"train time(s) {times} s (1-min load average, this process included: {load:.1f} before, "
                f"{os.getloadavg()[0]:.1f} after)"
            )
            results.append(r)
    bayes = score("Bayes limit", "-", test, test.true_ctr, [float("nan")])
    print()
    print(markdown(results, bayes))


if __name__ == "__main__":
    main()
