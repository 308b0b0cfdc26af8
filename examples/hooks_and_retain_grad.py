# %% [markdown]
# # Hooks and `retain_grad()`
#
# During `backward()` autograd only stores `.grad` on *leaf* tensors (the ones
# you created with `requires_grad=True`). Hooks let you look at, or even rewrite,
# the gradient of any tensor or module as it flows backward.

# %%
import torch
import torch.nn as nn

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * 2
z = (y ** 2).sum()
print("x is leaf:", x.is_leaf, "| y is leaf:", y.is_leaf)
z

# %% [markdown]
# ## A tensor hook that prints the gradient
#
# `tensor.register_hook(fn)` calls `fn(grad)` when the gradient for that tensor
# has been computed. Returning `None` leaves the gradient unchanged.

# %%
def show_grad(name):
    def hook(grad):
        print(f"d z / d {name} = {grad}")
    return hook

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * 2
y_handle = y.register_hook(show_grad("y"))
z = (y ** 2).sum()
z.backward()
x.grad

# %% [markdown]
# ## A hook that modifies the gradient
#
# If the hook returns a tensor, that tensor replaces the gradient for
# everything upstream. Here the gradient of `y` is clipped at 5 before it
# reaches `x` (dz/dy = 2y = [4, 8, 12] becomes [4, 5, 5]).

# %%
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * 2
clip_handle = y.register_hook(lambda grad: grad.clamp(max=5.0))
(y ** 2).sum().backward()
x.grad

# %% [markdown]
# ## `retain_grad()` on a non-leaf tensor
#
# Calling `retain_grad()` on an intermediate tensor asks autograd to keep its
# `.grad` after backward, just like a leaf.

# %%
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x * 2
y.retain_grad()
w = x * 3
(y ** 2).sum().backward()
print("y.retains_grad:", y.retains_grad, "| w.retains_grad:", w.retains_grad)
print("y.grad:", y.grad)
print("x.grad:", x.grad)

# %% [markdown]
# ## Removing a hook
#
# `register_hook` returns a handle. `handle.remove()` unregisters the hook, so
# the second backward below is not recorded. The leaf gradient still
# accumulates: 3 + 3 = 6.

# %%
calls = []
x = torch.tensor([1.0, 2.0], requires_grad=True)
handle = x.register_hook(lambda grad: calls.append(grad.clone()))
(x * 3).sum().backward()
handle.remove()
(x * 3).sum().backward()
print("hook calls:", len(calls), "| first grad seen:", calls[0])
x.grad

# %% [markdown]
# ## Module hooks
#
# Modules have hooks too. A forward hook sees `(module, inputs, output)`.
# A full backward hook sees `(module, grad_input, grad_output)`: the gradients
# with respect to the module's inputs and its outputs.

# %%
torch.manual_seed(0)
layer = nn.Linear(3, 2)

def forward_hook(module, inputs, output):
    print(f"forward  {type(module).__name__}: {tuple(inputs[0].shape)} -> {tuple(output.shape)}")

def backward_hook(module, grad_input, grad_output):
    print("backward grad_output:", grad_output[0])
    print("backward grad_input: ", grad_input[0])

fwd_handle = layer.register_forward_hook(forward_hook)
bwd_handle = layer.register_full_backward_hook(backward_hook)

inp = torch.ones(1, 3, requires_grad=True)
out = layer(inp)
out.sum().backward()
print("column sums of W:    ", layer.weight.sum(dim=0).detach())

# %% [markdown]
# The gradient w.r.t. the input equals the column sums of the weight matrix,
# because `d(sum(W x + b))/dx = W^T 1`.
#
# After removing both handles, forward and backward run silently.

# %%
fwd_handle.remove()
bwd_handle.remove()
inp.grad = None
layer(inp).sum().backward()
inp.grad
