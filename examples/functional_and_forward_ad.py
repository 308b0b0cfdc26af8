# %% [markdown]
# # Functional autograd and forward-mode AD
#
# `torch.autograd.functional` computes whole derivative objects (Jacobians,
# Hessians, vector-Jacobian and Jacobian-vector products) of a Python
# function. We use `f: R^2 -> R^2`, `f(x) = [x0^2 x1, 5 x0 + sin x1]`.

# %%
import torch
from torch.autograd.functional import hessian, jacobian, jvp, vjp


def f(x):
    return torch.stack([x[0] ** 2 * x[1], 5 * x[0] + torch.sin(x[1])])


x = torch.tensor([1.0, 2.0])
f(x)

# %% [markdown]
# ## Jacobian
#
# `J[i, j] = d f_i / d x_j`. Analytically: `[[2 x0 x1, x0^2], [5, cos x1]]`.

# %%
J = jacobian(f, x)
J

# %% [markdown]
# ## Hessian of a scalar function
#
# For `g(x) = x0^3 + x0 x1 + x1^2` the Hessian is `[[6 x0, 1], [1, 2]]`.

# %%
def g(x):
    return x[0] ** 3 + x[0] * x[1] + x[1] ** 2

hessian(g, x)

# %% [markdown]
# ## Vector-Jacobian product (reverse mode)
#
# `vjp(f, x, v)` returns `(f(x), v^T J)`: one backward pass, the building block
# of `backward()`.

# %%
v = torch.tensor([1.0, 0.5])
out, vJ = vjp(f, x, v)
print("v^T J:", vJ)
print("check:", v @ J)

# %% [markdown]
# ## Jacobian-vector product
#
# `jvp(f, x, v)` returns `(f(x), J v)`, the directional derivative of `f`
# along `v`.

# %%
out, Jv = jvp(f, x, v)
print("J v:  ", Jv)
print("check:", J @ v)

# %% [markdown]
# ## Forward-mode AD with dual numbers
#
# `torch.autograd.functional.jvp` uses two backward passes under the hood.
# True forward-mode AD carries a *tangent* alongside each value: inside a
# `dual_level`, `make_dual(x, v)` attaches tangent `v` to `x`, and
# `unpack_dual(out)` returns the primal `f(x)` and its tangent `J v`, in a
# single forward pass.

# %%
import torch.autograd.forward_ad as fwAD

with fwAD.dual_level():
    dual_x = fwAD.make_dual(x, v)
    dual_out = f(dual_x)
    primal, tangent = fwAD.unpack_dual(dual_out)
print("primal: ", primal)
print("tangent:", tangent)
print("J @ v:  ", J @ v)
torch.allclose(tangent, J @ v)

# %% [markdown]
# Pushing the basis vectors through one at a time gives the Jacobian column
# by column.

# %%
columns = []
with fwAD.dual_level():
    for e in torch.eye(2):
        columns.append(fwAD.unpack_dual(f(fwAD.make_dual(x, e))).tangent)
J_fwd = torch.stack(columns, dim=1)
print(J_fwd)
torch.allclose(J_fwd, J)

# %% [markdown]
# ## `torch.func`: composable transforms
#
# `torch.func` offers the same ideas as function transforms: `grad(g)` is a
# new function returning the gradient, `jvp` is forward mode, and `vmap`
# vectorizes a function over a batch dimension.

# %%
from torch.func import grad, vmap
from torch.func import jvp as func_jvp

print("grad(g)(x):", grad(g)(x))
_, Jv_func = func_jvp(f, (x,), (v,))
print("func.jvp:  ", Jv_func)

# %% [markdown]
# `vmap(grad(g))` computes per-example gradients for a whole batch in one
# call; compare with a Python loop.

# %%
batch = torch.tensor([[1.0, 2.0], [0.0, -1.0], [2.0, 0.5]])
per_example = vmap(grad(g))(batch)
loop = torch.stack([grad(g)(row) for row in batch])
print(per_example)
torch.allclose(per_example, loop)
