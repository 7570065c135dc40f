"""The dashboard's figures, as inline SVG (matplotlib, drawn on the server: the browser needs
nothing from another site)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from rtcheck.outputs.html_report import private_matplotlib_config

_NUMBER = re.compile(r"(<=|<|>=|>)\s*(-?\d+(?:\.\d+)?)")


def _figure(width: float = 6.0, height: float = 3.0) -> object:
    private_matplotlib_config()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _svg(figure: object) -> str:
    buffer = io.StringIO()
    figure.tight_layout()  # type: ignore[attr-defined]
    figure.savefig(buffer, format="svg")  # type: ignore[attr-defined]
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def thresholds(limits: Sequence[str]) -> list[tuple[float, str]]:
    """The distinct numeric thresholds among limit texts ("<= 45" → 45.0), with their text."""
    found = {}
    for text in limits:
        match = _NUMBER.match(text or "")
        if match:
            found[float(match.group(2))] = text
    return sorted(found.items())


def distribution_svg(values: Sequence[float], limits: Sequence[str], label: str) -> str:
    """A histogram of a limit's values over the plans, each distinct threshold a red line."""
    figure = _figure()
    from matplotlib.ticker import MaxNLocator

    axes = figure.add_subplot()  # type: ignore[attr-defined]
    if values:
        axes.hist(values, bins=min(40, max(5, len(values) // 3)), color="#0072B2")
    for value, text in thresholds(limits):
        axes.axvline(value, color="#D55E00", linewidth=1.5, label=f"limit {text}")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)
    axes.set_xlabel(label, fontsize=8, parse_math=False)
    axes.set_ylabel("Plans", fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.tick_params(labelsize=7)
    return _svg(figure)


def failure_rate_svg(months: Sequence[tuple[str, int, int]]) -> str:
    """The share of plans failing a limit, month by month."""
    figure = _figure(6.0, 2.4)
    axes = figure.add_subplot()  # type: ignore[attr-defined]
    labels = [m for m, _, _ in months]
    rates = [100 * failed / n if n else 0 for _, failed, n in months]
    axes.bar(range(len(labels)), rates, color="#D55E00")
    axes.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    axes.set_ylabel("Failed (%)", fontsize=8)
    axes.set_ylim(0, 100)
    axes.tick_params(labelsize=7)
    return _svg(figure)
