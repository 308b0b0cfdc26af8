# %% [markdown]
# # Where a NaN was born
#
# A loss that turns into `nan` tells you nothing about where the `nan` came from: every op
# after the first one passes it on. Replay this with `gradrepl replay --nan-check
# examples/nan_origin.py`: it names the `torch.log` of a negative score, three ops before the
# loss, not the ops that carried the `nan` there.

# %%
import torch

torch.manual_seed(0)
w = torch.tensor([0.5, 1.0, -0.5, 2.0], requires_grad=True)
x = torch.tensor([1.0, 1.25, 0.5, 1.0])
scores = w * x
logits = torch.log(scores)
shifted = logits - logits.max()
loss = (shifted ** 2).mean()
loss

# %%
loss.backward()
w.grad
