"""The ``aconnect`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    console = Console()
    console.print(f"[bold]aconnect demo[/]: digits MLP 64-64-10, hardened at sigma "
                  f"{args.sigma:g}, {args.chips} chips per evaluation sigma")
    with Progress(TextColumn("{task.description:<24}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                  console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        from aconnect.demo import run_demo

        result = run_demo(sigma=args.sigma, chips=args.chips, epochs=args.epochs,
                          seed=args.seed, out=args.out, progress=progress)

    table = Table(title="Top-1 test accuracy across simulated chips (median [IQR], min)")
    table.add_column("eval sigma", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column(f"A-Connect (sigma {args.sigma:g})", justify="right")
    for s in result.sigmas:
        row = [f"{s:g}"]
        for values in (result.baseline[s], result.hardened[s]):
            q1, median, q3 = (100 * v for v in _quartiles(values))
            row.append(f"{median:5.1f} % [{q1:.1f}-{q3:.1f}], min {100 * values.min():.1f}")
        table.add_row(*row)
    console.print(table)
    for path in result.saved:
        console.print(f"saved {path}")
    return 0


def _quartiles(values):
    import numpy as np

    return np.percentile(values, [25, 50, 75])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _run_demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
