"""A position in training, counted in epochs, updates and samples."""

from __future__ import annotations

import functools
import operator
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

__all__ = ["TrainingIteration"]


@functools.total_ordering
class TrainingIteration:
    """A position in training: any of ``epoch``, ``update`` and ``sample`` may be set.

    *Fully specified* means all three are set, *minimally specified* exactly one. ``+`` and ``-`` work field by
    field on iterations with the same fields set; ``a >= b`` holds if every set field of ``a`` is at least ``b``'s.
    ``str`` gives ``Epoch: 5`` (minimally specified) or ``E5_U500_S16000``, the form used in checkpoint names;
    ``dict(iteration)`` gives the set fields.

    Args:
        epoch: Completed epochs.
        update: Completed optimizer updates.
        sample: Samples seen.
    """

    FIELDS: ClassVar[tuple[str, str, str]] = ("epoch", "update", "sample")
    _PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"E(\d+)_U(\d+)_S(\d+)")

    def __init__(self, epoch: int | None = None, update: int | None = None, sample: int | None = None) -> None:
        self.epoch = epoch
        self.update = update
        self.sample = sample

    def _values(self) -> tuple[int | None, int | None, int | None]:
        return self.epoch, self.update, self.sample

    @property
    def specified_properties_count(self) -> int:
        """How many of the three fields are set."""
        return sum(value is not None for value in self._values())

    @property
    def is_fully_specified(self) -> bool:
        """All three fields are set."""
        return self.specified_properties_count == 3

    @property
    def is_minimally_specified(self) -> bool:
        """Exactly one field is set."""
        return self.specified_properties_count == 1

    def has_same_specified_properties(self, other: TrainingIteration) -> bool:
        """Whether ``self`` and ``other`` have the same fields set."""
        return [v is None for v in self._values()] == [v is None for v in other._values()]

    def _require_same_fields(self, other: TrainingIteration) -> None:
        if not self.has_same_specified_properties(other):
            raise RuntimeError(
                f"cannot combine TrainingIteration {self} with {other}: they must have the same fields set "
                f"({dict(self)} vs {dict(other)})"
            )

    def copy(self) -> TrainingIteration:
        """A copy of this iteration."""
        return TrainingIteration(self.epoch, self.update, self.sample)

    def get_n_equal_properties(self, other: TrainingIteration) -> int:
        """How many of the three fields are equal (two unset fields count as equal)."""
        return sum(a == b for a, b in zip(self._values(), other._values(), strict=True))

    def to_fully_specified(self, updates_per_epoch: int, effective_batch_size: int) -> TrainingIteration:
        """The fully specified iteration at the same position.

        The number of updates ``U`` comes from ``update``, or ``epoch * updates_per_epoch``, or
        ``int(sample / effective_batch_size)``; the result is ``E = int(U / updates_per_epoch)``, ``U``,
        ``S = U * effective_batch_size``.

        Raises:
            ValueError: If the iteration is neither fully nor minimally specified.
        """
        if self.is_fully_specified:
            return self.copy()
        if not self.is_minimally_specified:
            raise ValueError(f"TrainingIteration {dict(self)} must have exactly one of epoch, update, sample set")
        if self.update is not None:
            updates = self.update
        elif self.epoch is not None:
            updates = self.epoch * updates_per_epoch
        else:
            assert self.sample is not None
            updates = int(self.sample / effective_batch_size)
        return TrainingIteration(
            epoch=int(updates / updates_per_epoch), update=updates, sample=updates * effective_batch_size
        )

    def to_target_specification(self, target: TrainingIteration) -> TrainingIteration:
        """This iteration reduced to the fields ``target`` has set.

        Raises:
            ValueError: If ``target`` has more fields set than ``self``.
        """
        if target.specified_properties_count > self.specified_properties_count:
            raise ValueError(
                f"target {target} has {target.specified_properties_count} fields set, more than the "
                f"{self.specified_properties_count} of {self}"
            )
        kept = {name: getattr(self, name) for name in self.FIELDS if getattr(target, name) is not None}
        return TrainingIteration(**kept)

    def _apply(self, other: TrainingIteration, op: Callable[[int, int], int]) -> TrainingIteration:
        self._require_same_fields(other)
        pairs = zip(self._values(), other._values(), strict=True)
        values = [None if a is None or b is None else op(a, b) for a, b in pairs]
        return TrainingIteration(*values)

    def __add__(self, other: TrainingIteration) -> TrainingIteration:
        return self._apply(other, operator.add)

    def __sub__(self, other: TrainingIteration) -> TrainingIteration:
        return self._apply(other, operator.sub)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrainingIteration):
            return NotImplemented
        return self._values() == other._values()

    def __ge__(self, other: TrainingIteration) -> bool:
        self._require_same_fields(other)
        return all(a is None or b is None or a >= b for a, b in zip(self._values(), other._values(), strict=True))

    def __lt__(self, other: TrainingIteration) -> bool:
        return not self >= other

    def __hash__(self) -> int:
        return hash(self._values())

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for name, value in zip(self.FIELDS, self._values(), strict=True):
            if value is not None:
                yield name, value

    def __str__(self) -> str:
        if self.is_minimally_specified:
            name, value = next(iter(self))
            return f"{name.capitalize()}: {value}"
        return f"E{self.epoch}_U{self.update}_S{self.sample}"

    def __repr__(self) -> str:
        return f"TrainingIteration(epoch={self.epoch}, update={self.update}, sample={self.sample})"

    @classmethod
    def from_dict(cls, data: Mapping[str, int | None]) -> TrainingIteration:
        """Build from a mapping with any of the keys ``epoch``, ``update``, ``sample``.

        Raises:
            ValueError: If the mapping has other keys.
        """
        unknown = set(data) - set(cls.FIELDS)
        if unknown:
            raise ValueError(f"unknown TrainingIteration key(s) {sorted(unknown)}; allowed: {list(cls.FIELDS)}")
        return cls(epoch=data.get("epoch"), update=data.get("update"), sample=data.get("sample"))

    @classmethod
    def from_string(cls, value: str) -> TrainingIteration:
        """Parse ``E{epoch}_U{update}_S{sample}`` at the start of ``value``.

        Raises:
            ValueError: If ``value`` does not start with that pattern.
        """
        match = cls._PATTERN.match(value)
        if match is None:
            raise ValueError(f"{value!r} does not start with a training iteration such as 'E5_U500_S16000'")
        epoch, update, sample = (int(group) for group in match.groups())
        return cls(epoch=epoch, update=update, sample=sample)

    @classmethod
    def contains_string(cls, source: str) -> bool:
        """Whether ``source`` contains ``E{e}_U{u}_S{s}`` anywhere."""
        return cls._PATTERN.search(source) is not None

    @classmethod
    def find_string(cls, source: str) -> str:
        """The first ``E{e}_U{u}_S{s}`` in ``source``.

        Raises:
            ValueError: If there is none.
        """
        match = cls._PATTERN.search(source)
        if match is None:
            raise ValueError(f"no training iteration such as 'E5_U500_S16000' in {source!r}")
        return match.group(0)

    @classmethod
    def from_filename(cls, fname: str) -> TrainingIteration:
        """Parse the training iteration contained in a file name such as ``model_E5_U500_S16000.th``."""
        return cls.from_string(cls.find_string(fname))

    @classmethod
    def to_fully_specified_from_filenames(
        cls,
        directory: str | os.PathLike[str],
        training_iteration: TrainingIteration,
        prefix: str | None = None,
        suffix: str | None = None,
    ) -> TrainingIteration:
        """The fully specified iteration of the first file in ``directory`` (by name) at ``training_iteration``.

        Args:
            directory: Where to look.
            training_iteration: A minimally specified iteration, e.g. ``TrainingIteration(epoch=5)``.
            prefix: Only consider file names starting with this.
            suffix: Only consider file names ending with this.

        Raises:
            ValueError: If ``training_iteration`` is not minimally specified.
            FileNotFoundError: If no file matches.
        """
        if not training_iteration.is_minimally_specified:
            raise ValueError(f"training_iteration {training_iteration!r} must have exactly one field set")
        for name in sorted(os.listdir(directory)):
            if prefix is not None and not name.startswith(prefix):
                continue
            if suffix is not None and not name.endswith(suffix):
                continue
            if not cls.contains_string(name):
                continue
            candidate = cls.from_filename(name)
            if candidate.to_target_specification(training_iteration) == training_iteration:
                return candidate
        raise FileNotFoundError(
            f"no file for {training_iteration} in {os.fspath(directory)!r} (prefix={prefix!r}, suffix={suffix!r})"
        )
