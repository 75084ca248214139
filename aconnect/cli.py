"""The ``aconnect`` command line: the demo, and local hardening and evaluation jobs."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterator

from aconnect.mismatch import SIGMA_MAX


def _sigma(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= SIGMA_MAX:
        raise argparse.ArgumentTypeError(
            f"{text} is outside [0, {SIGMA_MAX}] (sigma is relative: 0.5 means 50 %)")
    return value


def _sigmas(text: str) -> list[float]:
    return [_sigma(part) for part in text.split(",") if part.strip()]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from aconnect import __version__

    parser = argparse.ArgumentParser(
        prog="aconnect",
        description="Harden Keras models against analog-hardware mismatch (A-Connect).",
    )
    parser.add_argument("--version", action="version", version=f"aconnect {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="train, harden and Monte-Carlo-test a small MLP on the bundled digits",
        description="Train a plain MLP on scikit-learn's digits, fine-tune an A-Connect copy, "
                    "and compare both on simulated chips at several sigmas.")
    demo.add_argument("--sigma", type=_sigma, default=0.5, help="training sigma (default 0.5)")
    demo.add_argument("--chips", type=_positive, default=200,
                      help="simulated chips per sigma (default 200)")
    demo.add_argument("--epochs", type=_positive, default=30,
                      help="epochs for each model (default 30)")
    demo.add_argument("--seed", type=int, default=0, help="seed for data split, training, chips")
    demo.add_argument("--out", type=Path, default=None,
                      help="folder to save baseline.keras and hardened.keras")

    data_help = ".npz with x_train, y_train, x_test, y_test (x_val, y_val optional)"
    harden = commands.add_parser(
        "harden", help="convert, retrain and validate a model (writes report and models)",
        description="Convert MODEL's Dense/Conv layers to A-Connect layers, fine-tune under "
                    "mismatch, and compare it with the original on simulated chips.")
    harden.add_argument("model", type=Path, help="trained Keras model (.keras)")
    harden.add_argument("--data", type=Path, required=True, help=data_help)
    harden.add_argument("--out", type=Path, required=True, help="output folder")
    how = harden.add_mutually_exclusive_group()
    how.add_argument("--sigma", type=_sigma, help="training sigma (default 0.5)")
    how.add_argument("--spec", type=Path, help="job spec JSON (see README)")
    harden.add_argument("--epochs", type=_positive, help="override training.epochs")
    harden.add_argument("--samples", type=_positive, help="override validation.samples")

    evaluate = commands.add_parser(
        "evaluate", help="Monte Carlo of a model as it is",
        description="Evaluate MODEL on simulated chips at each sigma and report the spread.")
    evaluate.add_argument("model", type=Path, help="Keras model (.keras)")
    evaluate.add_argument("--data", type=Path, required=True,
                          help=".npz with x_test, y_test")
    evaluate.add_argument("--sigmas", type=_sigmas, default=[0.0, 0.3, 0.5, 0.7],
                          help="comma-separated sigmas (default 0,0.3,0.5,0.7)")
    evaluate.add_argument("--samples", type=_positive, default=1000,
                          help="chips per sigma (default 1000)")
    evaluate.add_argument("--distribution", choices=["normal", "lognormal"], default="normal")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--out", type=Path, help="write report files here")
    for sub, handler in ((demo, _run_demo), (harden, _run_job), (evaluate, _run_job)):
        sub.set_defaults(handler=handler)
    _add_client_commands(commands)
    # Commands that other installed packages contribute (the service adds `serve`).
    for entry in entry_points(group="aconnect.commands"):
        entry.load()(commands)
    return parser


def _add_client_commands(commands) -> None:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--server", help="service URL (default: ACONNECT_URL or the local "
                                         "server started by `aconnect serve`)")
    server.add_argument("--token", help="API token (default: ACONNECT_TOKEN or the local one)")
    submit = commands.add_parser("submit", parents=[server], help="submit a job to a service")
    submit.add_argument("model", type=Path, help="Keras model (.keras)")
    submit.add_argument("--data", type=Path, required=True, help=".npz data set")
    submit.add_argument("--spec", type=Path, required=True, help="job spec JSON")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument("--out", type=Path, help="with --wait: download the results here")
    jobs = commands.add_parser("jobs", parents=[server], help="list your jobs")
    jobs.add_argument("--state", choices=["queued", "running", "succeeded", "failed",
                                          "canceled"])
    status = commands.add_parser("status", parents=[server], help="show one job")
    cancel = commands.add_parser("cancel", parents=[server], help="cancel a job")
    download = commands.add_parser("download", parents=[server], help="download a job's files")
    download.add_argument("--out", type=Path, required=True, help="folder for the files")
    for sub in (status, cancel, download):
        sub.add_argument("job_id", help="job id")
    for sub, handler in ((submit, _submit), (jobs, _jobs), (status, _status), (cancel, _cancel),
                         (download, _download)):
        sub.set_defaults(handler=handler)


def _client(args):
    from aconnect.client import Client

    return Client(args.server, args.token)


def _job_line(job: dict) -> str:
    p = job["progress"]
    stage = f" {p['stage']} {p['step']}/{p['total']}" if job["state"] == "running" else ""
    eta = f", ~{p['eta_seconds']:.0f}s left" if p.get("eta_seconds") else ""
    error = f": {job['error']}" if job.get("error") else ""
    rerun = f" (run {job['attempts']})" if job.get("attempts", 0) > 1 else ""
    return f"{job['id']}  {job['kind']:<8} {job['state']}{rerun}{stage}{eta}{error}"


def _follow(client, job_id: str, console) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description:<28}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                  console=console) as bar:
        task = bar.add_task("queued", total=1.0)

        def show(job: dict) -> None:
            p = job["progress"]
            bar.update(task, completed=p["fraction"],
                       description=f"{job['state']} {p['stage'] or ''}".strip())

        return client.wait(job_id, progress=show)


def _submit(args, console) -> int:
    client = _client(args)
    job = client.submit(args.model, args.data, args.spec)
    console.print(f"submitted job {job['id']} ({job['kind']})")
    if not args.wait:
        return 0
    job = _follow(client, job["id"], console)
    console.print(_job_line(job))
    if job["state"] == "succeeded" and args.out:
        for path in client.download(job["id"], args.out):
            console.print(f"saved {path}")
    return 0 if job["state"] == "succeeded" else 1


def _jobs(args, console) -> int:
    for job in _client(args).jobs(state=args.state)["jobs"]:
        console.print(_job_line(job), highlight=False)
    return 0


def _status(args, console) -> int:
    console.print(_job_line(_client(args).status(args.job_id)), highlight=False)
    return 0


def _cancel(args, console) -> int:
    console.print(_job_line(_client(args).cancel(args.job_id)), highlight=False)
    return 0


def _download(args, console) -> int:
    for path in _client(args).download(args.job_id, args.out):
        console.print(f"saved {path}")
    return 0


@contextmanager
def _progress_display(console) -> Iterator:
    """A rich display with one bar per stage; yields the ``progress(Progress)`` callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description:<24}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                  console=console) as bar:
        tasks: dict[str, int] = {}

        def update(report) -> None:
            if report.stage not in tasks:
                tasks[report.stage] = bar.add_task(report.stage, total=report.total)
            label = report.stage if report.epoch is None else (
                f"{report.stage} (epoch {report.epoch + 1})")
            bar.update(tasks[report.stage], completed=report.step, description=label)

        yield update


def _summary_table(title: str, rows: list[tuple[float, list]], columns: list[str], metric: str):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("eval sigma", justify="right")
    for column in columns:
        table.add_column(column, justify="right")
    scale, unit = (100, " %") if metric == "accuracy" else (1, "")
    for sigma, stats in rows:
        cells = [f"{sigma:g}"]
        for s in stats:
            cells.append(f"{scale * s['median']:.1f}{unit} [{scale * s['q1']:.1f}-"
                         f"{scale * s['q3']:.1f}], min {scale * s['min']:.1f}" if metric ==
                         "accuracy" else f"{s['median']:.4g} [{s['q1']:.4g}-{s['q3']:.4g}]")
        table.add_row(*cells)
    return table


def _run_demo(args: argparse.Namespace, console) -> int:
    import numpy as np

    from aconnect.demo import run_demo

    console.print(f"[bold]aconnect demo[/]: digits MLP 64-64-10, hardened at sigma "
                  f"{args.sigma:g}, {args.chips} chips per evaluation sigma")
    with _progress_display(console) as progress:
        result = run_demo(sigma=args.sigma, chips=args.chips, epochs=args.epochs,
                          seed=args.seed, out=args.out, progress=progress)

    def stats(values):
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        return {"q1": q1, "median": median, "q3": q3, "min": values.min()}

    rows = [(s, [stats(result.baseline[s]), stats(result.hardened[s])]) for s in result.sigmas]
    console.print(_summary_table(
        "Top-1 test accuracy across simulated chips (median [IQR], min)", rows,
        ["baseline", f"A-Connect (sigma {args.sigma:g})"], "accuracy"))
    for path in result.saved:
        console.print(f"saved {path}")
    return 0


def _job_spec(args: argparse.Namespace) -> dict | Path:
    from aconnect.spec import parse_spec

    if args.command == "evaluate":
        return {"kind": "evaluate", "mismatch": {"distribution": args.distribution},
                "validation": {"sigmas": args.sigmas, "samples": args.samples,
                               "seed": args.seed}}
    spec = parse_spec(args.spec).model_dump() if args.spec else {"kind": "harden"}
    if args.spec is None and args.sigma is not None:
        spec["mismatch"] = {"sigma": args.sigma}
    if args.epochs:
        spec.setdefault("training", {})["epochs"] = args.epochs
    if args.samples:
        spec.setdefault("validation", {})["samples"] = args.samples
    spec["kind"] = "harden"
    return spec


def _run_job(args: argparse.Namespace, console) -> int:
    import json
    import tempfile

    from aconnect.pipeline import run_job

    spec = _job_spec(args)
    out = args.out or Path(tempfile.mkdtemp(prefix="aconnect-evaluate-"))
    with _progress_display(console) as progress:
        written = run_job(args.model, args.data, spec, out, progress=progress)
    report = json.loads(written["report.json"].read_text())
    metric = report["validation"]["metric"]
    models = list(report["validation"]["models"])
    rows = [(row["sigma"], [row[m] for m in models]) for row in report["summary"]]
    console.print(_summary_table(f"{metric} across simulated chips (median [IQR])", rows,
                                 models, metric))
    if report.get("conversion"):
        converted = sum(d["converted"] for d in report["conversion"]["layers"])
        console.print(f"{converted} of {len(report['conversion']['layers'])} analog-type layers "
                      "converted (details in report.html)")
    for name, path in written.items():
        console.print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.console import Console

    from aconnect.client import ServiceError
    from aconnect.data import DataError
    from aconnect.pipeline import ModelError
    from aconnect.spec import SpecError

    try:
        return args.handler(args, Console())
    except (SpecError, DataError, ModelError, ServiceError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
