"""The history chart of the index: per run, created / not created / deferred / held, as geometry
for an inline SVG (pure).

The x axis is time: the last ``days`` days, one tick per day. Each run is its own
bar at its start time. Runs closer together than a bar's width (a manual ``sync``
a minute after a scheduled one) are set side by side in time order, never drawn
on top of each other; when the runs need more room than the base width, the chart
grows wider (its box scrolls) instead of squeezing bars together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.domain.report import RunSummary

CHART_DAYS = 30
BASE_PLOT_WIDTH, PLOT_HEIGHT = 680, 160
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 40, 8, 8, 34
MAX_BAR, MIN_BAR, GAP = 12.0, 3.0, 1.0  # px; neighbours keep at least GAP between them
MIN_LABEL_SPACING = 56  # px between two day labels
# (field of RunSummary, the words of the index table's column, colour)
SERIES = (
    ("created", "Created", "#2e7d32"),
    ("skipped", "Not created", "#9e9e9e"),
    ("deferred", "Deferred", "#ef6c00"),
    ("held", "Held", "#6a1b9a"),
)
EMPTY_RUN_COLOUR = "#cfcfcf"  # a run that changed nothing: a short mark, so it is still seen


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle of one series of one run."""

    run_id: int
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    """A day boundary on the time axis; ``label`` empty when there is no room for one."""

    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template needs to draw the chart (x and y in SVG pixels)."""

    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    max_value: int
    bars: list[Bar]
    ticks: list[Tick]
    first_label: str
    last_label: str
    runs: int  # runs drawn
    legend: tuple[tuple[str, str], ...] = tuple((label, colour) for _, label, colour in SERIES)


def run_positions(times: list[float], width: float, bar: float) -> list[float]:
    """Left edges for bars at ``times`` (fractions 0..1 of the axis, ascending) on ``width`` px.

    Each bar starts at its time, unless that would overlap its neighbour: then it is
    pushed right (and, near the right end, the group is pushed back left), keeping the
    order. Needs ``width >= len(times) * (bar + GAP)``, which ``history_chart`` ensures.
    """
    slot = bar + GAP
    positions: list[float] = []
    for fraction in times:
        x = fraction * (width - bar)
        positions.append(x if not positions else max(x, positions[-1] + slot))
    limit = width - bar
    for i in range(len(positions) - 1, -1, -1):
        limit = min(positions[i], limit)
        positions[i] = max(limit, 0.0)  # never left of the axis by a rounding error
        limit -= slot
    return positions


def _seconds(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def history_chart(runs: list[RunSummary], now: datetime, days: int = CHART_DAYS) -> Chart:
    """Stacked bars per run started within ``days`` before ``now``, oldest left, on a time axis.

    Dry runs are left out: they changed nothing.
    """
    start = now - timedelta(days=days)
    shown = sorted((r for r in runs if start <= r.started_at <= now and not r.dry_run), key=lambda r: r.started_at)
    bar = max(MIN_BAR, min(MAX_BAR, BASE_PLOT_WIDTH / max(len(shown), 1) * 0.8))
    plot_width = max(float(BASE_PLOT_WIDTH), len(shown) * (bar + GAP))
    span = (now - start).total_seconds()
    xs = run_positions([(r.started_at - start).total_seconds() / span for r in shown], plot_width, bar)

    totals = [sum(getattr(r, name) for name, _, _ in SERIES) for r in shown]
    max_value = max(totals, default=0)
    scale = PLOT_HEIGHT / max_value if max_value else 0.0
    bottom = MARGIN_TOP + PLOT_HEIGHT
    bars: list[Bar] = []
    for run, x, total in zip(shown, xs, totals, strict=True):
        bars += _run_bars(run, round(MARGIN_LEFT + x, 2), round(bar, 2), float(bottom), total, scale)
    return Chart(
        width=int(MARGIN_LEFT + plot_width + MARGIN_RIGHT),
        height=MARGIN_TOP + PLOT_HEIGHT + MARGIN_BOTTOM,
        plot_left=MARGIN_LEFT,
        plot_right=int(MARGIN_LEFT + plot_width),
        plot_top=MARGIN_TOP,
        plot_bottom=bottom,
        max_value=max_value,
        bars=bars,
        ticks=_day_ticks(start, now, days, plot_width, bar),
        first_label=f"{start:%Y-%m-%d}",
        last_label=f"{now:%Y-%m-%d}",
        runs=len(shown),
    )


def _run_bars(run: RunSummary, left: float, width: float, bottom: float, total: int, scale: float) -> list[Bar]:
    """One run's stacked segments, bottom up in ``SERIES`` order; a run that changed nothing gets a
    2-pixel mark, so it is still seen (and has a tooltip)."""
    when = _seconds(run.started_at)
    if not total:
        return [Bar(run.run_id, left, bottom - 2, width, 2, EMPTY_RUN_COLOUR, f"run {run.run_id} ({when})")]
    bars: list[Bar] = []
    y = bottom
    for name, label, colour in SERIES:
        value: int = getattr(run, name)
        if not value:
            continue
        height = value * scale
        y -= height
        title = f"run {run.run_id} ({when}): {value} {label.lower()}"
        bars.append(Bar(run.run_id, left, round(y, 2), width, round(height, 2), colour, title))
    return bars


def _day_ticks(start: datetime, now: datetime, days: int, plot_width: float, bar: float) -> list[Tick]:
    """A tick at each midnight on the axis, labelled every n-th day so that labels never collide."""
    span = (now - start).total_seconds()
    every = max(1, math.ceil(MIN_LABEL_SPACING / (plot_width / days)))
    first_day = datetime(start.year, start.month, start.day, tzinfo=start.tzinfo)
    ticks: list[Tick] = []
    for n in range(days + 2):
        day = first_day + timedelta(days=n)
        if not start <= day <= now:
            continue
        x = MARGIN_LEFT + (day - start).total_seconds() / span * (plot_width - bar) + bar / 2
        ticks.append(Tick(round(x, 2), f"{day:%m-%d}" if n % every == 0 else ""))
    return ticks
