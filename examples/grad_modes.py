# %% [markdown]
# # Grad modes: when autograd records, and when it does not
#
# Autograd records operations only while grad mode is enabled *and* at least
# one input requires grad. `torch.is_grad_enabled()` reports the current mode.

# %%
import torch

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * 2
print("grad enabled:", torch.is_grad_enabled())
print("y.requires_grad:", y.requires_grad, "| y.grad_fn:", type(y.grad_fn).__name__)

# %% [markdown]
# ## `torch.no_grad()`
#
# Inside `no_grad` results do not require grad and have no `grad_fn`, even if
# the inputs do. This is what you want for evaluation and parameter updates.

# %%
with torch.no_grad():
    print("inside no_grad, grad enabled:", torch.is_grad_enabled())
    y = x * 2
print("y.requires_grad:", y.requires_grad, "| y.grad_fn:", y.grad_fn)
print("after the block, grad enabled:", torch.is_grad_enabled())

# %% [markdown]
# `no_grad` also works as a function decorator.

# %%
@torch.no_grad()
def predict(t):
    return t * 10

predict(x)

# %% [markdown]
# ## `torch.enable_grad()` inside `no_grad`
#
# `enable_grad` switches recording back on locally, e.g. for a piece of code
# that must always build a graph.

# %%
with torch.no_grad():
    a = x * 2
    with torch.enable_grad():
        print("nested enable_grad, grad enabled:", torch.is_grad_enabled())
        b = x * 2
print("a.requires_grad:", a.requires_grad)
print("b.requires_grad:", b.requires_grad)

# %% [markdown]
# ## `torch.set_grad_enabled(mode)`
#
# Takes a boolean, so it is handy for code like `set_grad_enabled(is_training)`.
# Called as a function it changes the mode until changed back; it can also be
# used as a context manager.

# %%
torch.set_grad_enabled(False)
c = x * 2
print("after set_grad_enabled(False):", torch.is_grad_enabled(), "| c.requires_grad:", c.requires_grad)
torch.set_grad_enabled(True)
d = x * 2
print("after set_grad_enabled(True): ", torch.is_grad_enabled(), "| d.requires_grad:", d.requires_grad)

is_training = False
with torch.set_grad_enabled(is_training):
    e = x * 2
print("with set_grad_enabled(False) as a context:", e.requires_grad)

# %% [markdown]
# ## `torch.inference_mode()`
#
# A stricter, faster version of `no_grad`: tensors created inside are
# *inference tensors*, which skip autograd bookkeeping entirely.

# %%
with torch.inference_mode():
    print("in inference mode:", torch.is_inference_mode_enabled(), "| grad enabled:", torch.is_grad_enabled())
    t = x * 2
print("t.is_inference():", t.is_inference(), "| t.requires_grad:", t.requires_grad)
t

# %% [markdown]
# Inference tensors cannot be used later in a computation that autograd has to
# record (they cannot be saved for backward). Cloning gives a normal tensor.

# %%
w = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
try:
    (w * t).sum().backward()
except RuntimeError as err:
    print(f"{type(err).__name__}: {str(err).splitlines()[0]}")

(w * t.clone()).sum().backward()
print("with t.clone():", w.grad)

# %% [markdown]
# ## `detach()`
#
# `detach()` returns a tensor cut off from the graph. It **shares storage**
# with the original: writing into the detached tensor changes the original too.

# %%
src = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
det = src.detach()
print("det.requires_grad:", det.requires_grad, "| same storage:", det.data_ptr() == src.data_ptr())
det[0] = 100.0
src

# %% [markdown]
# ## `requires_grad_()`
#
# Turns on gradient tracking in place for a tensor created without it, for
# example a detached copy that should become a new leaf.

# %%
leaf = src.detach().clone().requires_grad_()
print("leaf:", leaf.is_leaf, "| requires_grad:", leaf.requires_grad)
(leaf ** 2).sum().backward()
leaf.grad
