# %% [markdown]
# # Vanishing gradients in a deep sigmoid network
#
# Each sigmoid passes on at most a quarter of the gradient it is given, so the first layers of
# a deep sigmoid MLP learn almost nothing. gradrepl keeps each parameter's ‖grad‖/‖param‖ over
# the steps (the inspector's ‖g‖/‖w‖ column) and names the layers whose gradients vanish:
# `gradrepl replay examples/vanishing_gradients.py` ends with a `[health]` line about
# `model.0` and `model.2`.

# %%
import torch

torch.manual_seed(0)
layers = []
for _ in range(8):
    layers += [torch.nn.Linear(16, 16), torch.nn.Sigmoid()]
model = torch.nn.Sequential(*layers)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(32, 16), torch.randn(32, 16)

# %%
for step in range(20):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
print(f"loss after 20 steps: {loss.item():.4f}")

# %%
first, last = model[0].weight, model[14].weight
print(f"first layer ‖grad‖/‖w‖: {(first.grad.norm() / first.norm()).item():.1e}")
print(f"last layer  ‖grad‖/‖w‖: {(last.grad.norm() / last.norm()).item():.1e}")
