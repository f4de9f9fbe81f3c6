"""One ``GradScaler.update()`` per iteration when several optimizer wrappers share a scaler.

``update()`` changes the loss scale. If the first of two wrappers called it right after its own step, the second
would unscale its gradients (scaled in the backward pass with the old scale) with the new scale, and the scale
would move twice per iteration. So each wrapper reports to a per-scaler *round*; the scaler is updated when every
member of the round has stepped (or found no gradients to step with).

Membership is learned: when a scaler is first used, every live wrapper that holds gradients at that moment is
expected to step with it in this iteration. A wrapper that then steps with another scaler, or without one, leaves
the round (which may complete it); a wrapper that steps with a scaler it has not used before joins. A member that
stops stepping altogether (a round that never completes) is dropped when a wrapper starts its next round: the
pending update is applied then, with a warning, so the scale keeps tracking overflows.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ScalerRounds"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class _Round:
    members: weakref.WeakSet[Any] = dataclasses.field(default_factory=weakref.WeakSet)
    finished: set[int] = dataclasses.field(default_factory=set)
    unscaled: bool = False
    """Whether some member unscaled gradients this round; ``update()`` requires at least one unscale."""


class ScalerRounds:
    """Tracks, for every enabled ``GradScaler``, which wrappers still have to step before it is updated.

    Args:
        has_gradients: Tells whether a wrapper currently holds any gradient (used to guess the first round's
            members).
    """

    def __init__(self, has_gradients: Callable[[Any], bool]) -> None:
        self._has_gradients = has_gradients
        self._live: weakref.WeakSet[Any] = weakref.WeakSet()
        self._rounds: weakref.WeakKeyDictionary[torch.amp.GradScaler, _Round] = weakref.WeakKeyDictionary()

    def register(self, wrapper: Any) -> None:
        """Make ``wrapper`` known as a potential member of any scaler's first round."""
        self._live.add(wrapper)

    def begin(self, scaler: torch.amp.GradScaler, wrapper: Any) -> None:
        """Call before ``wrapper`` unscales or steps with ``scaler``."""
        self.withdraw(wrapper, keep=scaler)
        current = self._rounds.get(scaler)
        if current is None:
            current = _Round()
            for candidate in list(self._live):
                if candidate is wrapper or self._has_gradients(candidate):
                    current.members.add(candidate)
            self._rounds[scaler] = current
        elif id(wrapper) in current.finished:
            missing = [member for member in current.members if id(member) not in current.finished]
            logger.warning(
                "GradScaler shared by several optimizer wrappers: %d of them did not step last iteration; updating "
                "the scaler now and no longer waiting for them",
                len(missing),
            )
            for member in missing:
                current.members.discard(member)
            self._complete(scaler, current)
        current.members.add(wrapper)

    def withdraw(self, wrapper: Any, keep: torch.amp.GradScaler | None = None) -> None:
        """``wrapper`` steps with another scaler (``keep``) or none: no other scaler's round waits for it."""
        for scaler, current in list(self._rounds.items()):
            if scaler is keep or wrapper not in current.members or id(wrapper) in current.finished:
                continue
            current.members.discard(wrapper)
            if current.finished and all(id(member) in current.finished for member in current.members):
                self._complete(scaler, current)

    def finish(self, scaler: torch.amp.GradScaler, wrapper: Any, *, unscaled: bool) -> None:
        """Call after ``wrapper`` stepped (``unscaled=True``) or found nothing to step (``unscaled=False``)."""
        current = self._rounds[scaler]
        current.finished.add(id(wrapper))
        current.unscaled = current.unscaled or unscaled
        if all(id(member) in current.finished for member in current.members):
            self._complete(scaler, current)

    @staticmethod
    def _complete(scaler: torch.amp.GradScaler, current: _Round) -> None:
        if current.unscaled:
            scaler.update()
        current.finished.clear()
        current.unscaled = False
