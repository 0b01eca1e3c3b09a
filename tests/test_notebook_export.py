"""`notebooks/03_export_and_serve.ipynb` is stored clean.

`tests/test_notebooks.py` executes it in the default run, in its quick configuration, and checks
what it prints: the export kept on a second write, string inputs in `saved_model_cli`, the served
answers to 8 easy-VQA questions from a fresh process, the same answers as the live model, clear
errors for bad requests, and the process serving on.
"""

import os

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "03_export_and_serve.ipynb")


def test_notebook_is_stored_without_errors():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], "stored with error outputs"
    source = "\n".join(c.source for c in notebook.cells)
    assert "MMKERAS_NOTEBOOK_QUICK" in source and "subprocess" in source
