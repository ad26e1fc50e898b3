"""Draw the figure gallery of the documentation: one figure of every ``lola plot`` kind and of
every study that draws one, each by the very command a user would type.

    python docs/make_gallery.py [FOLDER]        (default: docs/_generated/gallery)

writes ``FOLDER/NAME.png`` for every figure and ``FOLDER/gallery.md``, the body of
``docs/gallery.md``: each figure under the command that drew it. ``make docs`` runs it while the
site builds (``docs/conf.py``), so that the gallery always shows what the code draws today. The
instances are small (few seeds, few sweep values), so that the whole gallery takes seconds.

Every kind of ``lola plot`` must have an entry here: a kind without one is an error, in the
documentation build and in the tests. A command that needs an optional extra that is not
installed is listed with what it needs, and not drawn.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no window, whatever backend the environment names

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lola import cli  # noqa: E402

DEFAULT_FOLDER = Path(__file__).resolve().parent / "_generated" / "gallery"


@dataclass(frozen=True)
class Entry:
    """One gallery section: the commands that draw its figures, and what they show."""

    title: str
    commands: tuple      # lola command lines, run in order in one folder
    figures: tuple       # the files those commands write, shown in this order
    caption: str
    kinds: tuple = ()    # the ``lola plot`` kinds it shows
    needs: tuple = ()    # (module, extra) pairs: drawn only where the module imports


ENTRIES = (
    Entry("Profiles: block costs against depth",
          ("lola plot profile -o profile.png",),
          ("profile.png",),
          "The bundled measured profiles: FLOPs, peak memory and step latency of every block "
          "against its depth (depth 1 nearest the output).",
          kinds=("profile",)),
    Entry("Round latency against the number of devices",
          ("lola plot devices --values 12,16,20,30 --seeds 3 -o devices.png",),
          ("devices.png",),
          "A sweep over generated scenarios: the mean round latency of each method over the "
          "seeds, with its 95 % Student-t interval, and below it the share of seeds that are "
          "feasible.",
          kinds=("devices",)),
    Entry("Round latency against the total bandwidth",
          ("lola plot bandwidth --values 5e6,2e7,8e7 --seeds 2 --devices 12 -o bandwidth.png",),
          ("bandwidth.png",),
          "The same sweep over the uplink's total bandwidth B.",
          kinds=("bandwidth",)),
    Entry("Round latency against the devices' memory",
          ("lola plot memory --values 0.5,1,2 --seeds 2 --devices 12 -o memory.png",),
          ("memory.png",),
          "The same sweep over a scale of every device's memory budget; where memory binds, "
          "fewer seeds are feasible.",
          kinds=("memory",)),
    Entry("Convergence of the dual ascent",
          ("lola plot convergence -o convergence.png",),
          ("convergence.png",),
          "Primal round latency and dual lower bound of `dual-ascent` on the bundled default "
          "scenario, iteration by iteration.",
          kinds=("convergence",)),
    Entry("Who trains what: the allocation",
          ("lola plot allocation -o allocation.png",),
          ("allocation.png",),
          "The optimal allocation of the bundled default scenario: compute and upload time of "
          "every device with a block, in block depth order, with its bandwidth.",
          kinds=("allocation",)),
    Entry("Solver time",
          ("lola plot solver-time -o solver-time.png",),
          ("solver-time.png",),
          "Solve time against the instance size K = N, log-log, the median over seeds of each "
          "method.",
          kinds=("solver-time",)),
    Entry("Latency against an energy budget",
          ("lola scenario generate --devices 20 --energy-budget 40 -o powered.yaml",
           "lola plot energy powered.yaml -o energy.png"),
          ("energy.png",),
          "The optimal round latency as every device's energy budget per round tightens "
          "([Energy](energy.md)).",
          kinds=("energy",)),
    Entry("Several blocks per device",
          ("lola plot several-blocks --profiles roberta-base -o several-blocks.png",),
          ("several-blocks.png",),
          "The optimal round latency against the number of devices K, one block per device "
          "against up to four ([Several blocks per device](several-blocks.md)).",
          kinds=("several-blocks",)),
    Entry("Local, split or centralized",
          ("lola plot cooperation --seeds 2 -o cooperation.png",),
          ("cooperation.png",),
          "The fastest of local DEFT, split DEFT and centralized training over server "
          "throughput and uplink bandwidth, for three device mixes "
          "([Split mode](split-mode.md)).",
          kinds=("cooperation",)),
    Entry("Traffic on every link",
          ("lola plot ledger -o ledger.png",),
          ("ledger.png",),
          "Bytes up and down on each device's links in one round of the optimal allocation, "
          "stacked by kind ([Traffic](ledger.md)).",
          kinds=("ledger",)),
    Entry("Many rounds: re-allocated against static",
          ("lola simulate --rounds 20 --figure rounds-time.png --latency-figure "
           "rounds-latency.png",),
          ("rounds-time.png", "rounds-latency.png"),
          "Cumulative time (round latencies plus solve times) over 20 rounds of fresh fading, "
          "and the distribution of the per-round latency, for each method and for the static "
          "allocation that keeps round 1's ([Many rounds](rounds.md))."),
    Entry("The Pareto front of configurations",
          ("lola pareto -o pareto.png",),
          ("pareto.png",),
          "Every fine-tuning configuration (top L layers at rank r) solved exactly: round "
          "latency against trainable parameters, the exact front and the chosen knee "
          "([Pareto front](pareto.md))."),
    Entry("DEFT rounds in Flower",
          ("lola deft-run --rounds 2 --quiet --figure deft-run.png",),
          ("deft-run.png",),
          "Two rounds of the tiny model on the bundled default scenario: the measured step "
          "time of every client against the cost model's prediction, and the held-out loss "
          "against centralized fine-tuning ([DEFT rounds in Flower](flower.md)).",
          needs=(("flwr", "flower"), ("torch", "profile"))),
)


def missing_kinds(entries=ENTRIES) -> list:
    """The kinds of ``lola plot`` that no entry shows."""
    shown = {kind for entry in entries for kind in entry.kinds}
    return [kind for kind in cli.FIGURE_KINDS if kind not in shown]


def _missing_extras(entry: Entry) -> list:
    return sorted({extra for module, extra in entry.needs
                   if importlib.util.find_spec(module) is None})


def _run(command: str) -> None:
    """``command`` (``lola ...``) in this process, its standard output discarded."""
    words = shlex.split(command)
    assert words[0] == "lola", command
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        code = cli.main(words[1:])
    if code != 0:
        raise RuntimeError(f"gallery: '{command}' exited {code}: {errors.getvalue().strip()}")


def _section(entry: Entry, drawn: bool, missing: list) -> str:
    lines = [f"## {entry.title}", "", entry.caption, "", "```sh", *entry.commands, "```", ""]
    if drawn:
        for figure in entry.figures:
            lines += [f"![{entry.title}]({figure})", ""]
    else:
        extras = ",".join(missing)
        lines += [f"*Not drawn in this build: it needs the `{extras}` extra* "
                  f"(`pip install 'lola-deft[{extras}]'`).", ""]
    return "\n".join(lines)


def make_gallery(folder=DEFAULT_FOLDER) -> dict:
    """Draw every entry into ``folder`` and write ``folder/gallery.md``; return, per figure file,
    its path (None where an extra is missing)."""
    missing = missing_kinds()
    if missing:
        raise ValueError(f"docs/make_gallery.py: no gallery entry for the lola plot kinds "
                         f"{', '.join(missing)}: add one to ENTRIES")
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    drawn, sections = {}, []
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        try:
            for entry in ENTRIES:
                extras = _missing_extras(entry)
                if not extras:
                    for command in entry.commands:
                        _run(command)
                for figure in entry.figures:
                    if extras:
                        drawn[figure] = None
                        continue
                    shutil.copyfile(Path(work) / figure, folder / figure)
                    drawn[figure] = folder / figure
                sections.append(_section(entry, not extras, extras))
        finally:
            os.chdir(here)
    (folder / "gallery.md").write_text("\n".join(sections), encoding="utf-8")
    return drawn


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    started = time.perf_counter()
    drawn = make_gallery(Path(args[0]) if args else DEFAULT_FOLDER)
    count = sum(path is not None for path in drawn.values())
    print(f"gallery: {count} of {len(drawn)} figures in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
