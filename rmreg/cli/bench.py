"""``rmreg bench``: the loss-overhead benchmark (``benchmarks/bench_loss.py`` of a source checkout)."""

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from rmreg.cli.errors import CLIError

__all__ = ["add_parser", "find_script", "run"]

SCRIPT = Path("benchmarks") / "bench_loss.py"


def add_parser(subparsers: Any) -> None:
    """Register ``bench`` and its options."""
    parser = subparsers.add_parser(
        "bench",
        help="run the quick loss-overhead benchmark (Bradley–Terry vs GRM regularizers)",
        description="Run the loss-overhead benchmark (benchmarks/bench_loss.py of a source checkout): its --quick "
        "smoke configuration unless --full is given.",
    )
    parser.add_argument("--full", action="store_true", help="the full configuration (minutes, GBs of memory)")
    parser.add_argument("--output-dir", metavar="DIR", default="rmreg-bench", help="default: ./rmreg-bench")
    parser.add_argument(
        "--script",
        metavar="FILE",
        help=f"the benchmark script (default: ./{SCRIPT}, or the one beside the rmreg package in a source checkout)",
    )
    parser.set_defaults(run=run)


def find_script(explicit: str | None) -> Path:
    """The benchmark script: ``explicit``, else ``./benchmarks/bench_loss.py``, else the checkout's.

    Raises:
        CLIError: no script found (the benchmark ships with the source, not with the installed package).
    """
    if explicit is not None:
        if not Path(explicit).is_file():
            raise CLIError(f"{explicit}: no such file; pass the path of benchmarks/bench_loss.py with --script")
        return Path(explicit)
    checkout = Path(__file__).resolve().parents[2] / SCRIPT
    for candidate in (Path.cwd() / SCRIPT, checkout):
        if candidate.is_file():
            return candidate
    raise CLIError(
        f"no {SCRIPT} here: the benchmark ships with rmreg's source, not the installed package; run this from a "
        "source checkout or pass --script PATH"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark in a child process (it starts one process per case itself); return its exit code."""
    script = find_script(args.script)
    command = [sys.executable, str(script), "--out", args.output_dir, *([] if args.full else ["--quick"])]
    print("running:", " ".join(command), flush=True)
    return subprocess.call(command)
