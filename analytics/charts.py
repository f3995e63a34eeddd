"""Chart geometry for the server-rendered SVG charts: numbers in, shapes out. The templates
draw them (`templates/analytics/_charts.html`); no script, nothing from elsewhere."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

WIDTH = 720
HEIGHT = 200
LEFT = 44  # room for the y-axis labels
BOTTOM = 22  # room for the x-axis labels
TOP = 8
PLOT_W = WIDTH - LEFT - 8
PLOT_H = HEIGHT - BOTTOM - TOP
HEAT_CELL = 26
HEAT_LEFT = 40
HEAT_TOP = 18
HEAT_LEVELS = 5


def _nice_max(value: int) -> int:
    """A round top for the y axis, at least `value` (1 for empty charts)."""
    if value <= 0:
        return 1
    if value == 1:
        return 1
    step = 1
    while True:
        for m in (2, 4, 6, 8, 10):
            if step * m >= value:
                return step * m
        step *= 10


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


def _ticks(top: int) -> list[Tick]:
    """Lines at 0, half way (when it is a whole number) and the top."""
    steps = (0, 0.5, 1) if top % 2 == 0 else (0, 1)
    return [Tick(y=round(TOP + PLOT_H - PLOT_H * f, 1), label=f"{round(top * f):,}") for f in steps]


def _x_labels(days: list[dt.date]) -> list[dict[str, Any]]:
    """Up to six dates along the x axis."""
    if not days:
        return []
    step = max(1, len(days) // 6)
    slot = PLOT_W / len(days)
    return [
        {"x": round(LEFT + slot * (i + 0.5), 1), "label": day.strftime("%b %-d")}
        for i, day in enumerate(days)
        if i % step == 0
    ]


def bars(days: list[dt.date], values: list[int]) -> dict[str, Any]:
    """A bar per day."""
    top = _nice_max(max(values, default=0))
    slot = PLOT_W / max(len(values), 1)
    width = max(slot * 0.8, 1.0)
    shapes = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = PLOT_H * value / top
        shapes.append(
            {
                "x": round(LEFT + slot * i + (slot - width) / 2, 2),
                "y": round(TOP + PLOT_H - h, 2),
                "w": round(width, 2),
                "h": round(h, 2),
                "label": f"{day:%Y-%m-%d}: {value:,}",
                "value": value,
            }
        )
    return _frame(days, top) | {"bars": shapes}


def lines(days: list[dt.date], series: list[tuple[str, str, list[int]]]) -> dict[str, Any]:
    """A line per series (name, CSS class, values), one point per day."""
    top = _nice_max(max((max(v, default=0) for _, _, v in series), default=0))
    slot = PLOT_W / max(len(days), 1)
    drawn = []
    for name, css, values in series:
        points = " ".join(
            f"{LEFT + slot * (i + 0.5):.1f},{TOP + PLOT_H - PLOT_H * v / top:.1f}"
            for i, v in enumerate(values)
        )
        drawn.append({"name": name, "css": css, "points": points, "count": len(values)})
    return _frame(days, top) | {"series": drawn}


def _frame(days: list[dt.date], top: int) -> dict[str, Any]:
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - 8,
        "base": TOP + PLOT_H,
        "ticks": _ticks(top),
        "x_labels": _x_labels(days),
        "label_y": HEIGHT - 6,
    }


def ranking(rows: list[tuple[str, int]]) -> dict[str, Any]:
    """Horizontal bars, biggest first (busiest channels or communities)."""
    top = max((n for _, n in rows), default=0) or 1
    row_h = 24
    label_w = 180
    plot_w = WIDTH - label_w - 70
    shapes = [
        {
            "y": i * row_h + 4,
            "text_y": i * row_h + 18,
            "w": round(max(plot_w * n / top, 1), 2),
            "name": name,
            "value": n,
            "value_x": round(label_w + max(plot_w * n / top, 1) + 6, 2),
        }
        for i, (name, n) in enumerate(rows)
    ]
    return {
        "width": WIDTH,
        "height": max(len(rows), 1) * row_h + 8,
        "label_w": label_w,
        "bar_x": label_w,
        "bars": shapes,
    }


def heat_map(heat: list[list[int]], weekdays: tuple[str, ...]) -> dict[str, Any]:
    """7 by 24 cells, darker for busier hours (levels 0 to HEAT_LEVELS)."""
    top = max((max(row) for row in heat), default=0)
    cells = []
    for d, row in enumerate(heat):
        for h, value in enumerate(row):
            level = 0 if value == 0 or top == 0 else max(1, round(HEAT_LEVELS * value / top))
            cells.append(
                {
                    "x": HEAT_LEFT + h * HEAT_CELL,
                    "y": HEAT_TOP + d * HEAT_CELL,
                    "level": level,
                    "label": f"{weekdays[d]} {h:02d}:00: {value:,}",
                    "value": value,
                }
            )
    return {
        "width": HEAT_LEFT + 24 * HEAT_CELL + 4,
        "height": HEAT_TOP + 7 * HEAT_CELL + 4,
        "size": HEAT_CELL - 2,
        "cells": cells,
        "rows": [
            {"y": HEAT_TOP + d * HEAT_CELL + HEAT_CELL // 2 + 4, "label": w}
            for d, w in enumerate(weekdays)
        ],
        "hours": [
            {"x": HEAT_LEFT + h * HEAT_CELL + HEAT_CELL // 2, "label": f"{h:02d}"}
            for h in range(0, 24, 3)
        ],
    }
