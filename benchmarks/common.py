"""Shared pieces of the benchmarks: instances (``lola.generate.scaled_instance``), timing, atomic
CSV."""
from __future__ import annotations

import csv
import io
import statistics
import time
from pathlib import Path

from lola._io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(function, repeats):
    """Median wall time of ``repeats`` calls, and the last return value."""
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def write_csv(name, rows, out_dir=None) -> Path:
    """Write ``rows`` (dicts) as CSV into ``out_dir`` (default ``results/``), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(Path(out_dir or RESULTS) / name, buffer.getvalue(), parents=True)


def print_table(rows):
    from lola.report import format_table
    headers = list(rows[0])
    print(format_table(headers, [[_fmt(row[h]) for h in headers] for row in rows]))


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def standalone(module_doc: str, run, headline, argv=None, quick_help="fewer repeats"):
    """The command line of a single benchmark script: ``--quick``, run, print the headline."""
    import argparse

    parser = argparse.ArgumentParser(description=module_doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    summary = run(quick=args.quick)
    print("\n".join(headline(summary)))
    return summary
