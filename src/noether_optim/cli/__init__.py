"""The ``noether-optim`` command line: ``demo``, ``schedule`` and ``groups``."""
