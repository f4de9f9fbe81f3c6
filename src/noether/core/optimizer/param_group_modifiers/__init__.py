"""Plugins that change the properties (lr scale, weight decay, ...) of individual parameters' groups."""

__all__: list[str] = []
