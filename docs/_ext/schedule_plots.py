"""Sphinx extension: the ``schedule-plot`` directive draws a schedule's curve at build time.

In a MyST page::

    ```{schedule-plot} noether.core.schedules.LinearWarmupCosineDecaySchedule
    :steps: 100
    warmup_percent: 0.1
    end_value: 0.05
    ```

The body is the rest of the schedule config (YAML). The values come from
:func:`noether.core.schedules.preview.schedule_values` (an unset ``max_value`` is 1.0, or the ``:max-value:``
option), so the picture is what the library computes, never a drawing that can drift from it. The PNG is written
into the build directory (``<doctrees>/schedule_plots``; nothing is committed) and shown as a figure whose
caption is the config.

Every built-in schedule kind must be plotted somewhere: a kind of :data:`~noether.core.schemas.AnyScheduleConfig`
without a plot is a warning, so ``sphinx-build -W`` fails when a new kind is added without one.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: the build has no display

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from noether.core.schedules.preview import schedule_values
from noether.core.schemas.schedules import AnyScheduleConfig, kinds_of, validate_schedule_config

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 100
DEFAULT_MAX_VALUE = 1.0


def builtin_kinds() -> set[str]:
    """The short ``kind`` of every config class in :data:`AnyScheduleConfig`."""
    union = typing.get_args(AnyScheduleConfig)[0]
    return {kinds_of(typing.get_args(member)[0])[0] for member in typing.get_args(union)}


def draw(values: Any, title: str, path: Path) -> None:
    """Plot one value per step (a staircase: each value holds for its whole step) and save it as a PNG."""
    figure = Figure(figsize=(6.4, 2.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    # Step s holds its value over [s, s + 1): repeat the last value so the last step is drawn too.
    axes.plot(range(len(values) + 1), [*values, values[-1]], drawstyle="steps-post", color="tab:blue", linewidth=1.6)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("step")
    axes.set_ylabel("value")
    axes.set_xlim(0, len(values))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if min(values) >= 0:
        axes.set_ylim(bottom=0, top=max(values) * 1.05 or 1.0)
    axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


class SchedulePlot(SphinxDirective):
    """``schedule-plot KIND``: the curve of a schedule config over ``:steps:`` steps, drawn at build time."""

    required_arguments = 1
    has_content = True
    option_spec = {  # noqa: RUF012 (docutils reads this class attribute)
        "steps": directives.positive_int,
        "max-value": float,
    }

    def run(self) -> list[nodes.Node]:
        """Validate the config, compute its values, write the PNG and return a figure node showing it."""
        fields = yaml.safe_load("\n".join(self.content)) or {}
        if not isinstance(fields, dict):
            raise self.error(f"schedule-plot: the body must be YAML `key: value` lines, got {fields!r}")
        config_data = {"kind": self.arguments[0], **fields}
        steps = self.options.get("steps", DEFAULT_STEPS)
        max_value = self.options.get("max-value", DEFAULT_MAX_VALUE)
        try:
            config = validate_schedule_config(config_data)
            # Kinds with a peak get the default one unless the body sets it; the others (step, constant, ...)
            # have absolute values of their own.
            takes_peak = "max_value" in type(config).model_fields and config.max_value is None  # type: ignore[attr-defined]
            values = schedule_values(config, steps, max_value=max_value if takes_peak else None)
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            raise self.error(f"schedule-plot {self.arguments[0]}: {error}") from error

        kind = kinds_of(type(config))[0]
        short = kind.rpartition(".")[2]
        key = json.dumps([config_data, steps, max_value], sort_keys=True, default=str)
        png = self.plot_dir / f"{short}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.png"
        draw(values, f"{short}, {steps} steps", png)
        self.env.schedule_plot_kinds.setdefault(self.env.docname, set()).add(kind)  # type: ignore[attr-defined]

        source_dir = Path(self.env.srcdir) / Path(self.env.docname).parent
        figure = nodes.figure()
        figure += nodes.image(uri=os.path.relpath(png, source_dir), alt=f"{short} over {steps} steps")
        settings = ", ".join(f"{name}: {value}" for name, value in fields.items()) or "defaults"
        peak = f", max_value {max_value:g}" if takes_peak else ""
        figure += nodes.caption("", f"{short} ({settings}{peak}), {steps} steps")
        return [figure]

    @property
    def plot_dir(self) -> Path:
        """``<doctrees>/schedule_plots``: the build's own cache, outside the source tree.

        The HTML builder copies each image a page shows into ``_images``.
        """
        return Path(self.env.doctreedir) / "schedule_plots"


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    getattr(env, "schedule_plot_kinds", {}).pop(docname, None)


def _merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    env.schedule_plot_kinds.update(other.schedule_plot_kinds)  # type: ignore[attr-defined]


def _check_every_kind_is_plotted(app: Sphinx, env: BuildEnvironment) -> None:
    plotted = set().union(*env.schedule_plot_kinds.values())  # type: ignore[attr-defined]
    for kind in sorted(builtin_kinds() - plotted):
        logger.warning("schedule kind %s has no schedule-plot in the docs", kind)


def _init_env(app: Sphinx) -> None:
    if not hasattr(app.env, "schedule_plot_kinds"):
        app.env.schedule_plot_kinds = {}  # type: ignore[attr-defined]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive and the every-kind check."""
    app.add_directive("schedule-plot", SchedulePlot)
    app.connect("builder-inited", _init_env)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-check-consistency", _check_every_kind_is_plotted)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
