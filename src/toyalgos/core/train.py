"""The one training loop every topic uses.

It is deliberately small: draw a batch, compute ``loss_fn(model, *batch)``, step the
optimiser, record the loss (and its terms, for a loss that returns ``Loss``). What a topic
trains (a denoiser, a language model, a CTR model) lives in its loss; the loop knows nothing
about it. Every loss in the library has this contract; bind its options with
``functools.partial``, e.g. ``partial(mdm_loss, mask_id=tok.mask_id, generator=g)``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.std import tqdm

from .checks import check_choice, check_generator, check_number, check_positive_int
from .results import History, Loss

Batch = Any
DataSource = torch.Tensor | tuple[torch.Tensor, ...] | Callable[[], Batch] | Iterable[Batch]

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


def progress_bar(iterable: Iterable[Any], *, desc: str | None = None, enabled: bool = True) -> Iterable[Any]:
    """A text progress bar on stderr that stays at its final state (``100% ...``) when done.

    Plain text rather than a notebook widget, so that a notebook stored with its outputs shows
    how long each loop took, not a widget's first frame. At most one refresh a second: a
    notebook kernel queues every refresh as a message.
    """
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, file=sys.stderr, leave=True, mininterval=1.0, ncols=88)


def make_optimizer(
    params: Iterable[nn.Parameter], name: str, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """``'adam'``, ``'adamw'`` or ``'sgd'`` (with momentum 0.9) over ``params``."""
    check_choice(name, "optimizer", _OPTIMIZERS)
    kwargs: dict[str, float] = {"lr": lr, "weight_decay": weight_decay}
    if name == "sgd":
        kwargs["momentum"] = 0.9
    params = list(params)
    try:  # one fused kernel per step instead of a Python loop over tensors (torch >= 2.4 on CPU)
        return _OPTIMIZERS[name](params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return _OPTIMIZERS[name](params, foreach=True, **kwargs)


LR_SCHEDULES = ("constant", "cosine", "multistep")


def multistep_lr(step: int, steps: int, warmup: int = 0) -> float:
    """DeepSeek LLM's multi-step schedule (arXiv:2401.02954, §2.3), as a multiplier of the peak rate.

    Linear warm-up over ``warmup`` steps, then 1 until 80 % of the steps (of the tokens, at a
    fixed batch), 0.316 until 90 %, and 0.1 for the last 10 %.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    return 1.0 if step < 0.8 * steps else 0.316 if step < 0.9 * steps else 0.1


def lr_factor(step: int, steps: int, schedule: str, warmup: int = 0) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then the schedule.

    ``'constant'`` keeps 1; ``'cosine'`` decays from 1 to 0 over the steps after warm-up;
    ``'multistep'`` is ``multistep_lr`` (x0.316 at 80 % of the steps, x0.1 at 90 %).
    """
    check_choice(schedule, "lr_schedule", LR_SCHEDULES)
    if schedule == "multistep":
        return multistep_lr(step, steps, warmup)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _batches(
    data: DataSource, batch_size: int, generator: torch.Generator | None, device: torch.device
) -> Iterator[Batch]:
    """Endless stream of batches from a tensor (or tuple of tensors), a callable or an iterable."""
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, tuple) and all(isinstance(d, torch.Tensor) for d in data):
        n = data[0].shape[0]
        if any(d.shape[0] != n for d in data):
            raise ValueError(f"tensors must share their first dimension, got {[len(d) for d in data]}")
        data = tuple(d.to(device) for d in data)
        while True:
            idx = torch.randint(n, (batch_size,), generator=generator).to(device)
            picked = tuple(d[idx] for d in data)
            yield picked[0] if len(picked) == 1 else picked
    elif callable(data):
        while True:
            yield data()
    elif isinstance(data, Iterable):
        while True:
            empty = True
            for batch in data:
                empty = False
                yield batch
            if empty:
                raise ValueError("data is an empty iterable")
    else:
        raise TypeError(
            "data must be a tensor, a tuple of tensors, a callable returning a batch or an "
            f"iterable of batches, got {type(data).__name__}"
        )


def _check_options(
    steps: int, batch_size: int, lr: float, lr_schedule: str, ema_decay: float | None, generator: object
) -> None:
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_number(lr, "lr", 0, low_open=True)
    check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    check_generator(generator)
    if ema_decay is not None:
        check_number(ema_decay, "ema_decay", 0, 1, low_open=True, high_open=True)


def train(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor | Loss],
    data: DataSource,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    warmup: int = 0,
    grad_clip: float | None = None,
    ema_decay: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Minimise ``loss_fn`` over ``model``'s parameters for ``steps`` optimiser steps.

    Args:
        model: the module whose parameters are optimised.
        loss_fn: called as ``loss_fn(model, batch)``, or ``loss_fn(model, *batch)`` when the
            batch is a tuple; returns a scalar tensor, or a ``Loss`` whose terms are recorded.
        data: a tensor or tuple of tensors (minibatches of ``batch_size`` rows drawn with
            replacement using ``generator``), a zero-argument callable returning a fresh batch,
            or an iterable of batches (cycled).
        steps: number of optimiser steps.
        optimizer: ``'adam'``, ``'adamw'`` or ``'sgd'``.
        lr_schedule: ``'constant'``, ``'cosine'`` (to zero) or ``'multistep'`` (DeepSeek LLM's
            x0.316 at 80 % and x0.1 at 90 % of the steps), after ``warmup`` linear steps.
        grad_clip: clip the global gradient norm to this value, if given.
        ema_decay: if given, keep an exponential moving average of the parameters,
            theta_ema <- d theta_ema + (1 - d) theta after every step (as DDPM does), and load it
            into ``model`` when training ends.
        progress: show a tqdm progress bar.

    Returns:
        ``History(loss, terms)``: the loss at every step, shape ``(steps,)``, and for a loss
        that returns ``Loss`` each term's values (an empty dict otherwise). The model is left
        in eval mode, ready to be evaluated.
    """
    _check_options(steps, batch_size, lr, lr_schedule, ema_decay, generator)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    device = params[0].device
    opt = make_optimizer(params, optimizer, lr, weight_decay)
    batches = _batches(data, batch_size, generator, device)
    ema = [p.detach().clone() for p in params] if ema_decay is not None else None
    losses = np.empty(steps)
    terms: dict[str, np.ndarray] = {}
    model.train()
    bar = progress_bar(range(steps), desc=desc, enabled=progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(step, steps, lr_schedule, warmup)
        batch = next(batches)
        out = loss_fn(model, *batch) if isinstance(batch, tuple) else loss_fn(model, batch)
        loss = out.total if isinstance(out, Loss) else out
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"loss_fn must return a scalar tensor or a Loss, got {type(out).__name__}")
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar tensor, got shape {tuple(loss.shape)}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for avg, p in zip(ema, params, strict=True):
                    avg.lerp_(p, 1.0 - ema_decay)
        losses[step] = loss.item()
        if isinstance(out, Loss):
            for name, value in out.terms.items():
                terms.setdefault(name, np.empty(steps))[step] = value.item()
        if isinstance(bar, tqdm) and (step % max(1, steps // 50) == 0 or step == steps - 1):
            bar.set_postfix(loss=f"{losses[max(0, step - 49) : step + 1].mean():.4f}", refresh=False)
    if ema is not None:
        with torch.no_grad():
            for p, avg in zip(params, ema, strict=True):
                p.copy_(avg)
    model.eval()
    return History(losses, terms)
