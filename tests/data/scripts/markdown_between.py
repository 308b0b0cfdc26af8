# %% [markdown]
# # Gradients

# %%
import torch
x = torch.ones(2, requires_grad=True)

# %% [markdown]
# Now **backward** fills `x.grad`.

# %%
(x * 3).sum().backward()
x.grad
