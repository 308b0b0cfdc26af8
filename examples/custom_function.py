# %% [markdown]
# # Custom `torch.autograd.Function`
#
# When you need an operation autograd cannot differentiate on its own (or you
# want a different gradient), subclass `torch.autograd.Function` and write
# `forward` and `backward` yourself. `ctx.save_for_backward` stores the tensors
# that `backward` will need.

# %%
import torch
from torch.autograd import Function, gradcheck, gradgradcheck


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        # written with differentiable torch ops, so it can be differentiated again
        return grad_output * 3 * x ** 2


x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
y = Cube.apply(x)
print(y)
print("grad_fn type:", type(y.grad_fn).__name__)

# %% [markdown]
# `backward` receives the gradient of the loss with respect to the output and
# returns the gradient with respect to each input: `3 x^2 * grad_output`.

# %%
y.sum().backward()
print("custom:  ", x.grad)
print("expected:", 3 * x.detach() ** 2)

# %% [markdown]
# ## Checking the backward with `gradcheck`
#
# `gradcheck` compares the analytical gradient from `backward` against finite
# differences. Use double precision inputs so the numerical estimate is
# accurate.

# %%
x64 = torch.tensor([-1.3, 0.2, 0.7, 1.9], dtype=torch.double, requires_grad=True)
gradcheck(Cube.apply, (x64,))

# %% [markdown]
# Because `backward` only uses differentiable operations, second derivatives
# work too (`d2/dx2 x^3 = 6x`), and `gradgradcheck` verifies them.

# %%
(g,) = torch.autograd.grad(Cube.apply(x64).sum(), x64, create_graph=True)
(g2,) = torch.autograd.grad(g.sum(), x64)
print("second derivative:", g2)
print("6x:               ", 6 * x64.detach())
gradgradcheck(Cube.apply, (x64,))

# %% [markdown]
# ## A straight-through clamp
#
# The straight-through estimator clamps in the forward pass but passes the
# gradient through unchanged, as if the op were the identity. Non-tensor
# arguments (`lo`, `hi`) can be stored as plain attributes on `ctx`, and their
# "gradient" is `None`.

# %%
class StraightThroughClamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None, None


x = torch.tensor([-2.0, -0.5, 0.3, 1.5], requires_grad=True)
y = StraightThroughClamp.apply(x, -1.0, 1.0)
y.sum().backward()
print("forward:           ", y.detach())
print("straight-through:  ", x.grad)

x.grad = None
x.clamp(-1.0, 1.0).sum().backward()
print("true clamp gradient:", x.grad)

# %% [markdown]
# `gradcheck` tells the two apart: inside `[lo, hi]` the straight-through
# gradient is the true derivative, outside it is not (the true derivative is
# 0 there). With `raise_exception=False` gradcheck returns `False` instead of
# raising.

# %%
inside = torch.tensor([-0.6, 0.1, 0.8], dtype=torch.double, requires_grad=True)
outside = torch.tensor([-2.0, 0.1, 3.0], dtype=torch.double, requires_grad=True)

def ste(t):
    return StraightThroughClamp.apply(t, -1.0, 1.0)

print("inside the range: ", gradcheck(ste, (inside,), raise_exception=False))
print("outside the range:", gradcheck(ste, (outside,), raise_exception=False))
