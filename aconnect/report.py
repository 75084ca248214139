"""Reports: ``report.json`` (versioned), plots, and one self-contained ``report.html``."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from aconnect.files import atomic_write  # noqa: E402
from aconnect.montecarlo import MonteCarloResult  # noqa: E402

SCHEMA_VERSION = 1


def headline_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "mse"


def build_report(*, kind: str, task: str, spec: dict, model_name: str, data_sizes: dict,
                 sweeps: Mapping[str, Mapping[float, MonteCarloResult]],
                 conversion: dict | None = None, history: dict | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (see ``SCHEMA_VERSION``)."""
    from aconnect import __version__

    metric = headline_metric(task)
    sigmas = sorted({s for results in sweeps.values() for s in results})
    summary = []
    for s in sigmas:
        row: dict[str, Any] = {"sigma": s}
        for name, results in sweeps.items():
            stats = results[s].stats()[metric]
            row[name] = {k: stats[k] for k in ("median", "q1", "q3", "iqr", "min", "max")}
        summary.append(row)
    return {
        "schema_version": SCHEMA_VERSION,
        "aconnect_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "kind": kind,
        "inputs": {"model": model_name, "spec": spec, "data": data_sizes, "task": task},
        "conversion": conversion,
        "training": {"history": history} if history is not None else None,
        "validation": {
            "metric": metric,
            "sigmas": sigmas,
            "models": {name: {str(s): r.to_dict() for s, r in results.items()}
                       for name, results in sweeps.items()},
        },
        "summary": summary,
    }


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def accuracy_plot(report: dict) -> bytes:
    """Box plots per sigma, one box per model side by side."""
    validation = report["validation"]
    metric, sigmas, models = validation["metric"], validation["sigmas"], validation["models"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(sigmas), 4))
    width = 0.8 / len(models)
    for i, (name, results) in enumerate(models.items()):
        data = [results[str(s)]["per_chip"][metric] for s in sigmas]
        positions = [j + (i - (len(models) - 1) / 2) * width for j in range(len(sigmas))]
        boxes = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                           showfliers=False)
        for patch in boxes["boxes"]:
            patch.set_facecolor(f"C{i}")
            patch.set_alpha(0.6)
        ax.plot([], [], color=f"C{i}", linewidth=8, alpha=0.6, label=name)
    ax.set_xticks(range(len(sigmas)), [f"{s:g}" for s in sigmas])
    ax.set_xlabel("evaluation sigma")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} across simulated chips")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def training_plot(history: dict[str, list[float]]) -> bytes:
    names = [k for k in history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(range(1, len(history[name]) + 1), history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(range(1, len(history[name]) + 1), history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    return _png(fig)


def _html(report: dict, images: dict[str, bytes]) -> str:
    esc = html.escape
    metric = report["validation"]["metric"]
    models = list(report["validation"]["models"])
    head = "".join(f"<th>{esc(m)} median</th><th>{esc(m)} IQR</th>" for m in models)
    rows = "".join(
        f"<tr><td>{row['sigma']:g}</td>" + "".join(
            f"<td>{row[m]['median']:.4f}</td><td>{row[m]['q1']:.4f} – {row[m]['q3']:.4f}</td>"
            for m in models) + "</tr>" for row in report["summary"])
    conversion = ""
    if report.get("conversion"):
        items = "".join(
            f"<tr><td>{esc(d['name'])}</td><td>{esc(d['class_name'])}</td>"
            f"<td>{'A-Connect' if d['converted'] else 'digital'}</td><td>{esc(d['reason'])}</td>"
            "</tr>" for d in report["conversion"]["layers"])
        conversion = ("<h2>Conversion</h2><table><tr><th>layer</th><th>type</th><th>now</th>"
                      f"<th>why</th></tr>{items}</table>")
    pictures = "".join(
        f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode()}'>" for title, data in images.items())
    spec = esc(json.dumps(report["inputs"]["spec"], indent=2))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aconnect report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}
img{{max-width:100%}}pre{{background:#f6f6f6;padding:1em}}</style></head><body>
<h1>aconnect {esc(report['kind'])} report: {esc(report['inputs']['model'])}</h1>
<p>{esc(report['created'])} · aconnect {esc(report['aconnect_version'])} ·
task {esc(report['inputs']['task'])} · data {esc(json.dumps(report['inputs']['data']))}</p>
<h2>{esc(metric)} across simulated chips</h2>
<table><tr><th>sigma</th>{head}</tr>{rows}</table>
{pictures}{conversion}
<h2>Spec</h2><pre>{spec}</pre></body></html>
"""


def write_report(report: dict, out: Path) -> dict[str, Path]:
    """``report.json``, ``accuracy_vs_sigma.png``, ``training_curves.png`` and ``report.html``."""
    images = {"Across simulated chips": accuracy_plot(report)}
    written = {"report.json": out / "report.json", "accuracy_vs_sigma.png":
               out / "accuracy_vs_sigma.png"}
    atomic_write(written["report.json"], json.dumps(report, indent=1).encode())
    atomic_write(written["accuracy_vs_sigma.png"], images["Across simulated chips"])
    history = (report.get("training") or {}).get("history")
    if history:
        images["Training curves"] = training_plot(history)
        written["training_curves.png"] = out / "training_curves.png"
        atomic_write(written["training_curves.png"], images["Training curves"])
    written["report.html"] = out / "report.html"
    atomic_write(written["report.html"], _html(report, images).encode())
    return written
