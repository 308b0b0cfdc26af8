#!/usr/bin/env python
"""Autograd walkthrough."""

# %% [markdown]
# Gradients
# =========
#
# # x = 1 is prose here
# ~~~~
# ----
#%% Setup tags=["setup"] id="c1"
import torch


# %% [md]
# Note
# %% [raw] Raw block
# raw text
#
# %%