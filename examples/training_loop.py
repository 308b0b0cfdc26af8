# %% [markdown]
# # A tiny training loop
#
# Every PyTorch training loop repeats four steps: clear old gradients
# (`zero_grad`), compute the loss, `backward()` to fill `.grad`, and
# `optimizer.step()` to update the parameters.
#
# We start with noisy data from the line `y = 3x - 0.5`.

# %%
import torch
import torch.nn as nn

torch.manual_seed(0)
X = torch.linspace(-1, 1, 32).unsqueeze(1)
y_true = 3 * X - 0.5 + 0.1 * torch.randn_like(X)
print("X:", tuple(X.shape), "y:", tuple(y_true.shape))
y_true[:4].squeeze(1)

# %% [markdown]
# ## Model, loss and optimizer
#
# `nn.Linear(1, 1)` has a weight and a bias, both leaf tensors with
# `requires_grad=True`. Their `.grad` is `None` until the first backward.

# %%
torch.manual_seed(0)
model = nn.Linear(1, 1)
loss_fn = nn.MSELoss()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for name, p in model.named_parameters():
    print(f"{name}: {round(p.item(), 4)}  requires_grad={p.requires_grad}  grad={p.grad}")

# %% [markdown]
# ## Why `zero_grad` matters
#
# `backward()` *adds* into `.grad`. Two backward passes without clearing give
# twice the gradient. `zero_grad()` resets the gradients (to `None` by
# default).

# %%
loss_fn(model(X), y_true).backward()
first = model.weight.grad.clone()
loss_fn(model(X), y_true).backward()
print("after one backward: ", round(first.item(), 4))
print("after two backwards:", round(model.weight.grad.item(), 4))
opt.zero_grad()
print("after zero_grad:    ", model.weight.grad)

# %% [markdown]
# ## The loop
#
# 100 steps of plain SGD; the loss is printed every 20 steps.

# %%
for step in range(101):
    opt.zero_grad()
    loss = loss_fn(model(X), y_true)
    loss.backward()
    opt.step()
    if step % 20 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")

# %% [markdown]
# The learned parameters should be close to the true slope 3 and intercept
# -0.5 (rounded to 4 decimals).

# %%
{name: round(p.item(), 4) for name, p in model.named_parameters()}

# %% [markdown]
# ## A small MLP on a curve
#
# The same loop trains a two-layer network on `sin(3x)`, this time with
# momentum.

# %%
torch.manual_seed(0)
Y_curve = torch.sin(3 * X)
mlp = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
opt = torch.optim.SGD(mlp.parameters(), lr=0.1, momentum=0.9)
for step in range(301):
    opt.zero_grad()
    loss = loss_fn(mlp(X), Y_curve)
    loss.backward()
    opt.step()
    if step % 60 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")

# %% [markdown]
# For predictions no gradients are needed, so we wrap the forward pass in
# `torch.no_grad()`.

# %%
with torch.no_grad():
    X_test = torch.tensor([[-0.5], [0.0], [0.5]])
    pred = mlp(X_test).squeeze(1)
print("prediction:", [round(v, 4) for v in pred.tolist()])
print("target:    ", [round(v, 4) for v in torch.sin(3 * X_test).squeeze(1).tolist()])
print("pred.requires_grad:", pred.requires_grad)
