"""Core building blocks of noether: optimizers, schedules, configs, factories and training utilities."""
