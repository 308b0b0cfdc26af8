# %% [markdown]
# # Higher-order derivatives
#
# `torch.autograd.grad(outputs, inputs, create_graph=True)` returns gradients
# that are themselves part of a graph, so they can be differentiated again.

# %%
import torch
import torch.nn as nn

x = torch.tensor(2.0, requires_grad=True)
y = x ** 3
(dy_dx,) = torch.autograd.grad(y, x, create_graph=True)
dy_dx

# %% [markdown]
# `dy_dx = 3x^2 = 12` carries a `grad_fn`, so we can differentiate it again:
# `d2y/dx2 = 6x = 12`.

# %%
(d2y_dx2,) = torch.autograd.grad(dy_dx, x)
d2y_dx2

# %% [markdown]
# Without `create_graph=True` the returned gradient is a plain tensor with no
# history, and it cannot be differentiated a second time.

# %%
(plain,) = torch.autograd.grad(x ** 3, x)
print(plain, "requires_grad:", plain.requires_grad, "grad_fn:", plain.grad_fn)

# %% [markdown]
# ## Repeated differentiation
#
# The derivatives of `sin` cycle: cos, -sin, -cos, sin.

# %%
x = torch.tensor(0.5, requires_grad=True)
f = torch.sin(x)
for k in range(1, 5):
    (f,) = torch.autograd.grad(f, x, create_graph=True)
    print(f"order {k}: {f.item():+.6f}")
print("cos(0.5) = %+.6f, sin(0.5) = %+.6f" % (torch.cos(x).item(), torch.sin(x).item()))

# %% [markdown]
# ## Hessian-vector product
#
# For `f(w) = w0^2 * w1 + w1^3` the Hessian is `[[2 w1, 2 w0], [2 w0, 6 w1]]`.
# A Hessian-vector product `H v` needs two backward passes and never builds
# `H`: first `g = grad f` with `create_graph=True`, then `grad(g . v)`.

# %%
def f(w):
    return w[0] ** 2 * w[1] + w[1] ** 3

w = torch.tensor([1.0, 2.0], requires_grad=True)
v = torch.tensor([1.0, 0.0])
(g,) = torch.autograd.grad(f(w), w, create_graph=True)
(hvp,) = torch.autograd.grad(g @ v, w)
print("gradient:", g.detach())
hvp

# %% [markdown]
# Check: build the full Hessian row by row and multiply by `v`.

# %%
(g,) = torch.autograd.grad(f(w), w, create_graph=True)
H = torch.stack([torch.autograd.grad(g[i], w, retain_graph=True)[0] for i in range(2)])
print(H)
print("H @ v =", H @ v, "| matches:", torch.allclose(H @ v, hvp))

# %% [markdown]
# ## Gradient penalty: the gradient of a gradient norm
#
# WGAN-GP style regularizers penalize `(||d out / d x|| - 1)^2`. The penalty
# depends on the input gradient, so computing its gradient with respect to the
# weights needs a second-order backward pass.

# %%
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
xb = torch.randn(4, 2, requires_grad=True)
out = net(xb)
(grad_x,) = torch.autograd.grad(out.sum(), xb, create_graph=True)
penalty = ((grad_x.norm(dim=1) - 1) ** 2).mean()
penalty.backward()
print("input-gradient norms:", [round(n, 4) for n in grad_x.norm(dim=1).tolist()])
print("penalty:", round(penalty.item(), 4))
print("grad of penalty w.r.t. first-layer weight, norm:", round(net[0].weight.grad.norm().item(), 4))
