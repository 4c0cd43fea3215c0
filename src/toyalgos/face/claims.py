"""The face notebook's claims, each measured from verification scores, embeddings or loss values.

A margin loss that does not help fails ``tar_gain`` (equal to softmax's TAR, gain 0); classes no
more compact than the baseline's, or spread wider by noise, fail ``intra_class_angle_drop``; a
loss computed with the margin in the wrong unit (0.5 degrees instead of 0.5 radians) fails
``matches_reference``. The default bounds are notebook 33's, measured over seeds 0-3.
"""

from __future__ import annotations

import torch

from toyalgos.core.claims import Claim, at_least, at_most

from .verification import angle_stats, tar_at_far


def tar_gain(
    scores: torch.Tensor,
    baseline_scores: torch.Tensor,
    same: torch.Tensor,
    *,
    far: float = 1e-2,
    name: str = "model",
    baseline_name: str = "baseline",
    bound: float = 0.05,
) -> Claim:
    """TAR at FAR = ``far`` of ``scores`` minus that of ``baseline_scores`` on the same pairs.

    Holds when at least ``bound``.
    """
    gain = tar_at_far(scores, same, far) - tar_at_far(baseline_scores, same, far)
    return at_least(f"{name}: TAR@FAR={far:g} gain over {baseline_name} on unseen identities", gain, bound)


def intra_class_angle_drop(
    embeddings: torch.Tensor,
    baseline_embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    bound: float = 5.0,
) -> Claim:
    """Mean angle (degrees) of each sample to its class centre (ArcFace's "Intra",
    ``angle_stats(...).intra``) under the baseline, minus under ``embeddings``.

    Holds when at least ``bound``: the classes are that much more compact than the baseline's.
    """
    baseline = angle_stats(baseline_embeddings, labels).intra.mean()
    drop = baseline - angle_stats(embeddings, labels).intra.mean()
    return at_least("mean angle to the own class centre, drop from the baseline (°)", float(drop), bound)


def matches_reference(value: torch.Tensor, reference: torch.Tensor, *, bound: float = 1e-5) -> Claim:
    """max |value − reference|, our loss against a reference library's on the same batch.

    Holds when at most ``bound``.
    """
    gap = (
        (torch.as_tensor(value).detach().double() - torch.as_tensor(reference).detach().double()).abs().max()
    )
    return at_most("max |our loss - reference library's loss|", float(gap), bound)
