"""torch-specific helpers."""

from noether.core.utils.torch.amp import NoopContext, NoopGradScaler

__all__ = ["NoopContext", "NoopGradScaler"]
