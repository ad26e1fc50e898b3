"""GLUE tasks in GLUE's own layout: the files, their columns, and a reader that names bad lines.

A task is one row of :data:`TASKS`: its folder under the GLUE directory, whether its files start
with a header line, the column of the sentence and of the label in each split, and its labels.
Single-sentence tasks differ only in these, so CoLA (no header; label in column 2, sentence in
column 4 of ``train.tsv`` and ``dev.tsv``) is one more entry beside SST-2. A sentence-pair task
(MRPC, RTE, QNLI, ...) would add a second text column per split and tokenise the two texts as a
pair (``tokenizer(first, second, ...)``, with token type ids); the reader and the model's batch
would carry the pair through, and the rest of the race is unchanged.

Files are UTF-8, tab-separated, without quoting (GLUE's files are read with ``csv.QUOTE_NONE``).
Bad input is a :class:`GlueError` (a ``ValueError``) whose one-line message names the file and,
where one line is at fault, the line:

>>> import os, tempfile
>>> folder = tempfile.mkdtemp(); os.mkdir(os.path.join(folder, "SST-2"))
>>> path = os.path.join(folder, "SST-2", "dev.tsv")
>>> _ = open(path, "w").write("sentence\\tlabel\\na fine film\\t1\\nno label here\\n")
>>> try:
...     read_split(folder, "sst2", "dev")
... except GlueError as err:
...     print(str(err).replace(folder, "GLUE"))
GLUE/SST-2/dev.tsv:3: expected 2 tab-separated columns (sentence, label), found 1
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Task", "TASKS", "GlueError", "Split", "read_split", "task_files"]


class GlueError(ValueError):
    """A GLUE folder, file or line that cannot be read; the message names it."""


@dataclass(frozen=True)
class Task:
    """Where a single-sentence GLUE task keeps its sentences and labels."""

    name: str            # LoLa's name (--task)
    folder: str          # its folder under the GLUE directory
    header: bool         # whether each file starts with a header line
    columns: int         # tab-separated columns per line
    sentence: int        # column of the sentence (0-based)
    label: int           # column of the label
    labels: tuple = ("0", "1")
    column_names: tuple = ("sentence", "label")


TASKS = {
    "sst2": Task("sst2", "SST-2", header=True, columns=2, sentence=0, label=1),
    # CoLA's train.tsv and dev.tsv: source, label, original label (or blank), sentence; no header.
    "cola": Task("cola", "CoLA", header=False, columns=4, sentence=3, label=1,
                 column_names=("source", "label", "original label", "sentence")),
}


@dataclass
class Split:
    """One split of a task: its sentences and integer labels, and the file they came from."""

    sentences: list
    labels: list
    path: Path

    def __len__(self) -> int:
        return len(self.labels)


def _task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise GlueError(f"--task {name}: unknown task; choose one of "
                        f"{', '.join(sorted(TASKS))}") from None


def task_files(glue_dir, task: str) -> dict:
    """``{"train": path, "dev": path, "test": path or None}``, checked to exist (test optional)."""
    spec = _task(task)
    root = Path(glue_dir)
    if not root.is_dir():
        raise GlueError(f"--glue-dir {root}: no such folder")
    folder = root / spec.folder
    if not folder.is_dir():
        raise GlueError(f"--glue-dir {root}: no folder {spec.folder} for --task {task}")
    files = {}
    for split in ("train", "dev", "test"):
        path = folder / f"{split}.tsv"
        if path.is_file():
            files[split] = path
        elif split == "test":
            files[split] = None
        else:
            raise GlueError(f"{path}: no such file (--task {task} needs {split}.tsv)")
    return files


def read_split(glue_dir, task: str, split: str, *, path=None) -> Split:
    """Read one split (``train``, ``dev`` or ``test``) of ``task`` under ``glue_dir``.

    Every line must have the task's columns and a label among the task's labels; blank lines
    are skipped; a header line, where the task has one, must name the sentence and label
    columns. The first bad line ends the reading with a :class:`GlueError` naming it.
    """
    spec = _task(task)
    if path is None:
        root = Path(glue_dir)
        if not (root / spec.folder).is_dir():
            task_files(glue_dir, task)  # names what is missing
        path = root / spec.folder / f"{split}.tsv"
        if not path.is_file():
            raise GlueError(f"{path}: no such file")
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise GlueError(f"{path}:{line}: not UTF-8 text") from None
    except OSError as err:
        raise GlueError(f"{path}: cannot read ({err.strerror or err})") from None
    lines = text.split("\n")
    sentences, labels = [], []
    start = 0
    wanted = ", ".join(spec.column_names)
    if spec.header:
        header = lines[0].rstrip("\r").split("\t") if lines else []
        names = [name.strip() for name in header]
        if (len(names) != spec.columns or names[spec.sentence] != "sentence"
                or names[spec.label] != "label"):
            raise GlueError(f"{path}:1: expected the header line {wanted!r} (tab-separated), "
                            f"found {lines[0][:60]!r}")
        start = 1
    for number, line in enumerate(lines[start:], start=start + 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != spec.columns:
            raise GlueError(f"{path}:{number}: expected {spec.columns} tab-separated columns "
                            f"({wanted}), found {len(fields)}")
        label = fields[spec.label].strip()
        if label not in spec.labels:
            raise GlueError(f"{path}:{number}: label {label[:20]!r} is not one of "
                            f"{', '.join(spec.labels)}")
        sentence = fields[spec.sentence].strip()
        if not sentence:
            raise GlueError(f"{path}:{number}: empty sentence")
        sentences.append(sentence)
        labels.append(spec.labels.index(label))
    if not labels:
        raise GlueError(f"{path}: no examples")
    return Split(sentences, labels, path)
