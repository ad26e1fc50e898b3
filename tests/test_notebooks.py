"""The notebooks execute from top to bottom (small sweeps) in a plain Jupyter kernel, show every
figure they draw, and the profiles notebook runs without the ``profile`` extra."""
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
PROFILES = next(path for path in NOTEBOOKS if path.stem == "03-profiles")


def test_the_numbered_notebooks_are_stored_without_outputs():
    stems = [p.stem for p in NOTEBOOKS]
    assert {"01-quickstart", "02-latency-tradeoffs", "03-profiles"} <= set(stems)
    assert all(re.fullmatch(r"\d\d-[\w-]+", stem) for stem in stems), stems
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code")


def _kernel_env(**extra):
    """The environment of a plain kernel: whatever backend the test process was given is not
    passed on, so that the kernel picks its own (inline) backend as it would for a user."""
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env.update(LOLA_QUICK="1", **extra)
    return env


def _execute(path, env):
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(book, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    errors = [o for cell in book.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
    return book


def _images(cell):
    return [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


def _stdout(book):
    return "".join(o.get("text", "") for cell in book.cells for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_shows_its_figures(path):
    text = path.read_text()
    if any(f"{verb} lola.{package}" in text for verb in ("import", "from")
           for package in ("flower", "race")):
        for module in ("flwr", "torch"):  # the flower and profile extras (not in make test-oldest)
            pytest.importorskip(module, reason=f"{path.stem} runs fine-tuning in Flower")
    book = _execute(path, _kernel_env())
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    drawing = [cell for cell in code if "plots.plot_" in cell.source]
    assert drawing, f"{path.stem} draws no figure"
    for cell in drawing:
        images = _images(cell)
        # shown once, as a figure of the inline backend (not only as "<Figure size ...>")
        assert [o["output_type"] for o in images] == ["display_data"], cell.source
    for cell in code:
        if cell not in drawing:
            assert not _images(cell), cell.source
        texts = [o["data"].get("text/plain", "") for o in cell.get("outputs", [])
                 if "data" in o and "image/png" not in o["data"]]
        assert not any(text.startswith("<Figure size") for text in texts), cell.source


def test_profiles_notebook_says_what_it_skips_without_the_profile_extra(tmp_path):
    # torch, transformers and peft made unimportable for the kernel, as on an install without
    # the extra: these packages shadow the real ones on PYTHONPATH and refuse to import
    for name in ("torch", "transformers", "peft"):
        package = tmp_path / "absent" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f'raise ImportError("No module named {name}", name="{name}")\n')
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path / "absent"),
                                               os.environ.get("PYTHONPATH")]))
    book = _execute(PROFILES, _kernel_env(PYTHONPATH=pythonpath))
    stdout = _stdout(book)
    assert "skipping the tiny profiling run: profiling needs torch, transformers and peft" \
        in stdout
    assert "is missing" in stdout
    # the bundled tables and their figure do not need the extra
    assert any(_images(cell) for cell in book.cells if "plots.plot_profile" in cell.source)
