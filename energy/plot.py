"""The auditor's figure: kWh per day per zone, and baseline against metered, one PNG.

Top: metered kWh per civil day, stacked by zone. Bottom: the baseline (the replaced lamps over
the same burning hours) against the verified metered energy, with the saving between them shaded
and the days whose data has gaps marked, so what the figure claims is visibly bounded by what
was measured. matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from energy.report import GRID_FACTOR_KG_PER_KWH, Row

_HALF_DAY = timedelta(hours=12)
_FACTOR_SOURCE = " (China, 2022 national grid)"
_PALETTE = ("#1b6ca8", "#f29e4c", "#3caea3", "#c5283d", "#7d5ba6", "#8c8c8c", "#e6c229")


def plot_report(
    path: Path,
    zone_days: Sequence[Row],
    days: Sequence[Row],
    *,
    title: str,
    grid_factor: float,
) -> None:
    """Draw the figure from the zone × day rows and the day rows of one report."""
    dates = [date.fromisoformat(r.period) for r in days]
    zones = sorted({r.key for r in zone_days})
    by_zone = {z: {r.period: r.metered_kwh for r in zone_days if r.key == z} for z in zones}
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    base = [0.0] * len(dates)
    for i, zone in enumerate(zones):
        values = [by_zone[zone].get(r.period, 0.0) for r in days]
        top.bar(
            dates, values, bottom=base, width=0.8, label=zone, color=_PALETTE[i % len(_PALETTE)]
        )
        base = [b + v for b, v in zip(base, values, strict=True)]
    top.set_ylabel("metered energy (kWh / day)")
    top.set_title("Metered energy per day, by zone", loc="left", fontsize=11)
    top.legend(title="zone", ncols=min(len(zones), 6), fontsize=8, loc="upper left")
    top.grid(axis="y", alpha=0.3)

    baseline = [r.baseline_kwh for r in days]
    verified = [r.verified_kwh for r in days]
    bottom.plot(
        dates, baseline, color="#c5283d", marker="o", ms=3, label="baseline (replaced lamps)"
    )
    bottom.plot(dates, verified, color="#1b6ca8", marker="o", ms=3, label="metered (verified)")
    bottom.fill_between(dates, verified, baseline, color="#3caea3", alpha=0.25, label="saving")
    gaps = [d for d, r in zip(dates, days, strict=True) if r.gap]
    if gaps:
        for d in gaps:
            day = datetime.combine(d, time(0))
            bottom.axvspan(day - _HALF_DAY, day + _HALF_DAY, color="#999", alpha=0.2)
        bottom.plot([], [], color="#999", alpha=0.4, lw=8, label="day with data gaps")
    bottom.set_ylabel("energy (kWh / day)")
    bottom.set_title("Baseline against metered energy, same burning hours", loc="left", fontsize=11)
    bottom.legend(fontsize=8, loc="upper left", ncols=4)
    bottom.grid(axis="y", alpha=0.3)
    # Headroom above the data, so the legends never cover a bar or a point.
    top.set_ylim(0, max([*base, 0.001]) * 1.3)
    bottom.set_ylim(0, max([*baseline, *verified, 0.001]) * 1.3)
    step = max(1, -(-len(dates) // 11))
    bottom.set_xticks(dates, minor=True)
    bottom.set_xticks(dates[::step], labels=[f"{d.day} {d:%b}" for d in dates[::step]])

    metered = sum(r.metered_kwh for r in days)
    base_total = sum(baseline)
    saving = sum(r.savings_kwh for r in days)
    readings = sum(r.readings for r in days)
    expected = sum(r.expected for r in days)
    share = f"{100 * saving / base_total:.1f} %" if base_total > 0 else "n/a"
    completeness = f"{100 * readings / expected:.1f} %" if expected > 0 else "n/a"
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    fig.text(
        0.01,
        0.01,
        f"Metered {metered:,.1f} kWh; baseline {base_total:,.1f} kWh; saving {saving:,.1f} kWh "
        f"({share}); CO₂ avoided {saving * grid_factor:,.1f} kg at {grid_factor} kg/kWh"
        f"{_FACTOR_SOURCE if grid_factor == GRID_FACTOR_KG_PER_KWH else ''}.\n"
        f"Data completeness {completeness}; gaps are excluded from baseline and saving.",
        fontsize=8,
        color="#333",
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
