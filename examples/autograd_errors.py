# %% [markdown]
# # Common autograd errors (and their fixes)
#
# Each cell below triggers a typical autograd error, catches it, prints the
# exception type and the first line of its message, and then shows the fix.

# %%
import torch


def show(err):
    print(f"{type(err).__name__}: {str(err).splitlines()[0]}")


show(ValueError("the helper prints only the first line\nof a longer message"))

# %% [markdown]
# ## 1. Backward through the same graph twice
#
# After `backward()` autograd frees the intermediate values it saved. A second
# backward needs `retain_graph=True` on the first call.

# %%
x = torch.tensor([1.0, 2.0], requires_grad=True)
y = (x.exp() * x).sum()
y.backward()
try:
    y.backward()
except RuntimeError as e:
    show(e)

# %%
x = torch.tensor([1.0, 2.0], requires_grad=True)
y = (x.exp() * x).sum()
y.backward(retain_graph=True)
y.backward()
print("fixed with retain_graph=True, accumulated grad:", x.grad)

# %% [markdown]
# ## 2. `backward()` on a non-scalar output
#
# The implicit starting gradient `1.0` only makes sense for a scalar. For a
# vector output, reduce it (e.g. `.sum()`) or pass an explicit `gradient=`.

# %%
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * 2
try:
    y.backward()
except RuntimeError as e:
    show(e)

y.backward(gradient=torch.ones_like(y))
print("fixed with gradient=ones:", x.grad)

# %% [markdown]
# ## 3. In-place change of a tensor saved for backward
#
# `sigmoid` saves its output to compute its gradient. Modifying that output in
# place bumps its version counter, and autograd refuses to use the stale value.

# %%
a = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
b = a.sigmoid()
b.mul_(2)
try:
    b.sum().backward()
except RuntimeError as e:
    show(e)

b = a.sigmoid()
c = b * 2          # out-of-place: the saved output stays intact
c.sum().backward()
print("fixed out-of-place:", a.grad)

# %% [markdown]
# ## 4. Nothing in the graph requires grad
#
# If no input has `requires_grad=True`, there is no graph to go back through.

# %%
t = torch.tensor([1.0, 2.0, 3.0])
try:
    (t ** 2).sum().backward()
except RuntimeError as e:
    show(e)

t.requires_grad_()
(t ** 2).sum().backward()
print("fixed with requires_grad_():", t.grad)

# %% [markdown]
# ## 5. `.numpy()` on a tensor that requires grad
#
# NumPy arrays cannot carry autograd history, so `detach()` first.

# %%
w = torch.tensor([0.5, 1.5], requires_grad=True)
try:
    w.numpy()
except RuntimeError as e:
    show(e)

w.detach().numpy()

# %% [markdown]
# ## 6. In-place update of a leaf that requires grad
#
# Updating parameters in place would be recorded by autograd and break the
# leaf. Optimizers do it inside `torch.no_grad()`, and so should you.

# %%
w = torch.tensor([0.5, 1.5], requires_grad=True)
try:
    w += 1
except RuntimeError as e:
    show(e)

with torch.no_grad():
    w += 1
print("fixed under no_grad:", w, "| still a leaf:", w.is_leaf)

# %% [markdown]
# ## An uncaught error
#
# Finally the first mistake again, this time without `try`: the second
# `backward()` raises and the cell ends with a traceback (its tag tells
# `gradrepl check` and nbval that the error is expected).

# %% tags=["raises-exception"]
x = torch.tensor([1.0, 2.0], requires_grad=True)
y = (x.exp() * x).sum()
y.backward()
y.backward()
