"""The notebooks: committed without outputs, as the generator writes them, and each runs top to bottom."""

import os
import sys
import time
from pathlib import Path

import nbclient  # the test extra installs nbclient, nbformat and ipykernel
import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDER = REPO / "notebooks"
NAMES = ["01_quickstart", "02_spike_in_batch_correction", "03_drug_combinations",
         "04_image_editing", "05_export_and_serve", "06_studies"]


def _read(name):
    return nbformat.read(FOLDER / f"{name}.ipynb", as_version=4)


def test_the_six_notebooks_are_committed():
    assert sorted(p.stem for p in FOLDER.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name):
    for cell in _read(name).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_committed_notebooks_are_what_the_generator_writes(tmp_path):
    sys.path.insert(0, str(FOLDER))
    try:
        import make_notebooks
    finally:
        sys.path.remove(str(FOLDER))
    for path in make_notebooks.write_all(tmp_path):
        assert path.read_text() == (FOLDER / path.name).read_text(), (
            f"{path.name} differs from notebooks/make_notebooks.py's output; "
            "run python notebooks/make_notebooks.py")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_opens_with_install_parameters_and_strategy_cells(name):
    cells = _read(name).cells
    assert f"notebooks/{name}.ipynb" in cells[0].source  # the Colab badge
    assert "except ImportError:\n    !pip install -q neuronedit_tf" in cells[1].source
    assert cells[2].metadata["tags"] == ["parameters"]
    assert "TPUStrategy" in cells[3].source and "MirroredStrategy" in cells[3].source


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    # The kernel is a new process in tmp_path: it must import this checkout.
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                           if p and p != "."]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = _read(name)
    started = time.time()
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    seconds = time.time() - started
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert "neuronedit_tf" in "".join(o.get("text", "") for o in notebook.cells[1].outputs)
    print(f"{name}: {seconds:.1f} s")
