"""The history chart: created / skipped / deferred per run, as geometry for an inline SVG (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.domain.report import RunSummary

CHART_DAYS = 30
WIDTH, HEIGHT, MARGIN_LEFT, MARGIN_BOTTOM = 720, 180, 40, 20
SERIES = (("created", "#2e7d32"), ("skipped", "#9e9e9e"), ("deferred", "#ef6c00"))


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle of one series of one run."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template needs to draw the chart."""

    width: int
    height: int
    plot_left: int
    plot_bottom: int
    max_value: int
    bars: list[Bar]
    first_label: str
    last_label: str
    legend: tuple[tuple[str, str], ...] = SERIES


def history_chart(runs: list[RunSummary], now: datetime, days: int = CHART_DAYS) -> Chart:
    """Stacked bars per run started within ``days`` before ``now``, oldest left, on a time axis.

    Dry runs are left out: they changed nothing.
    """
    start = now - timedelta(days=days)
    shown = sorted((r for r in runs if start <= r.started_at <= now and not r.dry_run), key=lambda r: r.started_at)
    plot_width = WIDTH - MARGIN_LEFT
    plot_height = HEIGHT - MARGIN_BOTTOM
    max_value = max((r.created + r.skipped + r.deferred for r in shown), default=0)
    scale = plot_height / max_value if max_value else 0.0
    span = (now - start).total_seconds()
    # Bars sit at their run's time; they are at most 12 px wide and never overlap their neighbours much.
    bar_width = max(1.0, min(12.0, plot_width / max(len(shown), 1) * 0.8))
    bars: list[Bar] = []
    for run in shown:
        x = MARGIN_LEFT + (run.started_at - start).total_seconds() / span * (plot_width - bar_width)
        y = float(plot_height)
        for name, colour in SERIES:
            value: int = getattr(run, name)
            if not value:
                continue
            height = value * scale
            y -= height
            title = f"run {run.run_id} ({run.started_at:%Y-%m-%d %H:%M}): {value} {name}"
            bars.append(Bar(round(x, 2), round(y, 2), round(bar_width, 2), round(height, 2), colour, title))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=MARGIN_LEFT,
        plot_bottom=plot_height,
        max_value=max_value,
        bars=bars,
        first_label=f"{start:%Y-%m-%d}",
        last_label=f"{now:%Y-%m-%d}",
    )
