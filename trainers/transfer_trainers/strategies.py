"""Which layers train, and at which learning rate, for the layer-wise strategies.

A model is seen as `layers` (bottom to top: embeddings/stem first) plus a new `head`.
featureExtraction trains the head only; fineTune the top-k layers (all when k is None);
progressiveUnfreezing (ULMFiT) starts with `startLayers` top layers and unfreezes one more
every `unfreezeEveryEpochs`; layerLrDecay gives the layer d below the top lr * decay**d.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from transfer_trainers.spec import StrategySpec, TrainingSpec


def trainable_top_layers(strategy: StrategySpec, n_layers: int, epoch: float) -> int:
    """How many of the top layers train at (fractional) `epoch`."""
    if strategy.type == "featureExtraction":
        return 0
    if strategy.type == "fineTune":
        k = strategy.fine_tune.top_k_layers
        return n_layers if k is None else min(k, n_layers)
    if strategy.type == "progressiveUnfreezing":
        pu = strategy.progressive_unfreezing
        return min(n_layers, pu.start_layers + math.floor(epoch / pu.unfreeze_every_epochs + 1e-9))
    return n_layers  # distillation / domainAdaptation train the whole (student) model


def set_trainable(layers: list[nn.Module], head: nn.Module, top: int) -> None:
    for i, layer in enumerate(layers):
        on = i >= len(layers) - top
        for p in layer.parameters():
            p.requires_grad_(on)
    for p in head.parameters():
        p.requires_grad_(True)


HEAD_LR_MULTIPLIER = 20.0  # a new head starts from random weights: 1-2 orders of magnitude above the backbone


def head_lr(training: TrainingSpec) -> float:
    """`headLearningRate`, else 20 x `learningRate`: a pre-trained backbone needs small steps, a
    randomly initialised linear head at the backbone's LR barely moves in a short run."""
    return training.head_learning_rate or training.learning_rate * HEAD_LR_MULTIPLIER


def param_groups(
    layers: list[nn.Module], heads: list[nn.Module], strategy: StrategySpec, training: TrainingSpec
) -> list[dict]:
    """Optimizer groups over every parameter that may ever train; frozen ones get no grad and
    AdamW skips them, so progressive unfreezing needs no new optimizer."""
    groups = [{"params": [p for h in heads for p in h.parameters()], "lr": head_lr(training), "name": "head"}]
    decay = strategy.layer_lr_decay or 1.0
    may_train = trainable_top_layers(strategy, len(layers), epoch=1e9)
    for depth, layer in enumerate(reversed(layers)):
        if depth >= may_train:
            break
        groups.append({"params": list(layer.parameters()), "lr": training.learning_rate * decay**depth,
                       "name": f"layer-{len(layers) - 1 - depth}"})
    return [g for g in groups if g["params"]]


def make_optimizer(groups: list[dict], training: TrainingSpec) -> torch.optim.Optimizer:
    for g in groups:
        g.setdefault("weight_decay", training.weight_decay)
    return torch.optim.AdamW(groups, lr=training.learning_rate, weight_decay=training.weight_decay)
