"""`notebooks/03_export_and_serve.ipynb`: stored clean, and runs headless in its quick configuration.

`tests/test_notebooks.py` already executes every notebook in the default run; the execution here
is marked slow and checks what this notebook must show: the export kept on a second write, string
inputs in `saved_model_cli`, and a fresh process answering as the live model.
"""

import os

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "03_export_and_serve.ipynb")


def test_notebook_is_stored_without_errors():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], "stored with error outputs"
    source = "\n".join(c.source for c in notebook.cells)
    assert "MMKERAS_NOTEBOOK_QUICK" in source and "subprocess" in source


@pytest.mark.slow
def test_notebook_runs_quick_and_serves_from_a_fresh_process(monkeypatch, tmp_path):
    monkeypatch.setenv("MMKERAS_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    text = "\n".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "stream"
    )
    assert "quick mode" in text
    assert "FileExistsError: `path` already holds an export" in text
    assert "DT_STRING" in text and "outputs['answer_class']" in text
    assert "same answers: True" in text
    assert text.count("(truth: ") == 8
    assert "still serving:" in text
