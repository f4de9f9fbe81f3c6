"""noether-optim: the optimizer API of the noether framework as a standalone library."""

__version__ = "0.1.0"
