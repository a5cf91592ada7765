# SPDX-License-Identifier: Apache-2.0
"""Defines a small convolutional network in PyTorch, exports it to ONNX with
``torch.onnx.export`` and records what PyTorch itself computes for fixed inputs.

Writes, beside this script:
  model.onnx    the network: ``images`` float32 [batch, 3, 32, 32] ->
                ``features`` float32 [batch, 128] (after global average pooling)
                and ``logits`` float32 [batch, 10]; the batch dim is dynamic.
  expected.npz  ``images`` (fixed inputs, batch 5) and the ``features`` and
                ``logits`` PyTorch computed for them, in eval mode.

Made with torch 2.13.0 (CPU wheel), onnx 1.23.2, onnxscript 0.7.2, numpy 2.4.6,
Python 3.11, in a virtualenv of its own: PyTorch is not a dependency of
tf-graphpipe, which only serves the exported file. To make them again:

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch==2.13.0 onnx onnxscript numpy
    /tmp/torch/bin/python examples/pytorch_cnn/export.py

The weights are PyTorch's default initialisation under a fixed seed (the
network is untrained: what matters here is that every number is PyTorch's).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0
BATCH = 5


class SmallCnn(nn.Module):
    """Three conv/ReLU blocks, global average pooling, a linear classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(128, classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images)
        return features, self.head(features)


def main() -> None:
    torch.manual_seed(SEED)
    model = SmallCnn().eval()
    images = torch.randn(BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(SEED + 1))
    with torch.no_grad():
        features, logits = model(images)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        model,
        (images,),
        str(HERE / "model.onnx"),
        input_names=["images"],
        output_names=["features", "logits"],
        dynamic_shapes={"images": {0: batch}},
        dynamo=True,
        external_data=False,
    )
    np.savez(HERE / "expected.npz", images=images.numpy(), features=features.numpy(), logits=logits.numpy())
    print(f"wrote {HERE / 'model.onnx'} and {HERE / 'expected.npz'} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
