"""Charts as inline SVG, drawn on the server: geometry here, markup in ``templates/console/_charts.html``.

No chart library and no script: a line chart is a polyline with one circle (and a ``<title>`` for
screen readers and hover) per stored point, so what the page shows is exactly what was stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD = 640, 220, 56, 28, 12


@dataclass
class Point:
    x: float
    y: float
    label: str  # what the point's <title> says


@dataclass
class Series:
    name: str
    points: list[Point] = field(default_factory=list)
    css: str = "s0"

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass
class Chart:
    title: str
    series: list[Series]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    """Slope and offset mapping [lo, hi] onto [a, b]."""
    span = (hi - lo) or 1.0
    return (b - a) / span, a - lo * (b - a) / span


def _number(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 10 else f"{value:,.1f}"


def line_chart(
    title: str,
    data: Sequence[tuple[str, Sequence[tuple[float, float, str]]]],
    x_label: Callable[[float], str] = str,
) -> Chart:
    """A chart of named series of (x, y, point label); x and y are plain numbers."""
    xs = [x for _n, pts in data for x, _y, _l in pts]
    ys = [y for _n, pts in data for _x, y, _l in pts]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_hi = max(ys + [0.0]) or 1.0
    kx, bx = _scale(x_lo, x_hi, PAD_LEFT + PAD, WIDTH - PAD)
    ky, by = _scale(0.0, y_hi, HEIGHT - PAD_BOTTOM, PAD)
    series = [
        Series(name, [Point(kx * x + bx, ky * y + by, label) for x, y, label in pts], css=f"s{i % 4}")
        for i, (name, pts) in enumerate(data)
    ]
    y_ticks = [(ky * v + by, _number(v)) for v in (0.0, y_hi / 2, y_hi)]
    x_ticks = [(kx * v + bx, x_label(v)) for v in ((x_lo, x_hi) if x_hi > x_lo else (x_lo,))]
    return Chart(title, series, y_ticks, x_ticks)


@dataclass
class Bar:
    label: str
    value: float
    width: float
    y: float


def bar_chart(title: str, items: Sequence[tuple[str, float]], limit: int = 12) -> tuple[str, list[Bar], int]:
    """Horizontal bars, largest first (at most ``limit``): (title, bars, svg height)."""
    top = sorted(items, key=lambda kv: -kv[1])[:limit]
    most = max((v for _k, v in top), default=0.0) or 1.0
    bars = [Bar(k, v, max(v / most * (WIDTH - 260), 1.0), 8 + i * 26) for i, (k, v) in enumerate(top)]
    return title, bars, 16 + 26 * len(bars)
