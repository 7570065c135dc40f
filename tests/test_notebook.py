"""The walkthrough notebook runs top to bottom from a clean kernel (its outputs are not kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    # Plots are shown inline, not only saved.
    images = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
              if "image/png" in o.get("data", {})]  # fmt: skip
    assert images
    # Tables are printed whole: the check table's notes and lesions are in the output.
    printed = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for o in cell.outputs)  # fmt: skip
    assert "Structures (protocol name = ROIs in the plan):" in printed and "Lesion M3:" in printed


def test_walkthrough_says_the_command_for_each_step_and_how_to_open_it():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    steps = [c.source for c in notebook.cells
             if c.cell_type == "markdown" and c.source.startswith("## ")]  # fmt: skip
    assert len(steps) >= 6 and all("Command line: `rtcheck " in s for s in steps)
    text = "\n".join(c.source for c in notebook.cells)
    assert "--map map.yaml" in text and "--protocol my-protocol.yaml" in text
    assert "Agg" not in text and "savefig" not in text
    root = NOTEBOOK.parents[1]
    assert "make notebook" in (root / "README.md").read_text()
    assert "\nnotebook:" in (root / "Makefile").read_text()
