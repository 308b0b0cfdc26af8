"""gradrepl: a terminal REPL for watching PyTorch autograd."""

__version__ = "0.1.0"
