"""The cells of the model recordings (tests/support/recorder.py scenarios linear_model and
deep_model), for the tests that type them into the app again."""

from __future__ import annotations

LINEAR_MODEL = ("import torch\nfrom torch import nn\ntorch.manual_seed(0)\nmodel = nn.Linear(64, 32)\n"
                "batch = torch.randn(8, 64)\nloss = model(batch).pow(2).mean()\nloss.backward()")
DEEP_MODEL = ("import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
              "deep = nn.Sequential(*[nn.Linear(2, 2) for _ in range(16)])\n"
              "mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))\nx = torch.randn(4, 2)\nc = x")
DEEP_BACKWARD = "deep(x).sum().backward()"
