"""Utilities shared by the optimizer, schedule and factory modules."""
