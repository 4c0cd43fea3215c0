"""A face model: an embedding network and a training head, trained together, evaluated apart.

DeepID's idea: train a closed-set classifier over the training identities (the head: one of
``losses``' modules), then throw the head away and compare unseen faces by the cosine of their
embeddings. ``FaceModel(embed, head)`` holds both; ``face_loss(model, images, labels)`` is the
training loss ``core.train`` calls; ``face_embeddings`` is what verification uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from toyalgos.core.checks import check_positive_int, check_tensor
from toyalgos.core.modes import evaluating
from toyalgos.nn import ConvBackbone


class FaceEmbedder(nn.Module):
    """Images (N, c_in, H, W) -> embeddings (N, embedding_size).

    ``ConvBackbone`` then ArcFace's output block: BN -> flatten -> FC -> BN (the "BN-FC-BN"
    embedding of insightface's ResNets, dropout left out at toy scale).
    """

    def __init__(
        self,
        embedding_size: int = 64,
        *,
        image_size: int = 24,
        channels: Sequence[int] = (32, 64),
        patch: int = 2,
        depth: int = 1,
        c_in: int = 1,
    ):
        super().__init__()
        check_positive_int(embedding_size, "embedding_size")
        check_positive_int(image_size, "image_size")
        self.backbone = ConvBackbone(channels, patch=patch, depth=depth, c_in=c_in)
        cells = (image_size // self.backbone.stride) ** 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels[-1] * cells, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size),
        )
        self.embedding_size = embedding_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class FaceModel(nn.Module):
    """An embedding network ``embed`` and a loss head ``head(embeddings, labels) -> scalar``.

    Calling the model gives the embeddings; the head is used only by ``face_loss``.
    """

    def __init__(self, embed: nn.Module, head: nn.Module):
        super().__init__()
        self.embed, self.head = embed, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)


def face_loss(model: FaceModel, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The head's loss on the embeddings of a batch: ``model.head(model.embed(images), labels)``.

    Fit for ``core.train(model, face_loss, (images, labels))``, which then trains the embedding
    network and the class weights together.
    """
    return model.head(model.embed(images), labels)


def face_embeddings(model: nn.Module, images: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
    """``model(images)`` in eval mode without gradients, in batches: (N, ...) -> (N, D)."""
    check_positive_int(batch_size, "batch_size")
    images = check_tensor(images, "images", dtype="float")
    with evaluating(model):
        return torch.cat([model(chunk) for chunk in images.split(batch_size)])
