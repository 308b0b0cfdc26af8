"""
Gradients in a sphinx gallery
=============================

Shows how gradients flow.
"""

import torch

###############################################################################
# Build a leaf tensor
# -------------------
#
# ``requires_grad`` marks it.

x = torch.ones(2, requires_grad=True)
y = (x * 3).sum()

###############################################################################
# Backward
# ~~~~~~~~

y.backward()
print(x.grad)
