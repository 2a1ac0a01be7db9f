"""The style-interpolation notebook runs headless, top to bottom, without errors."""

import datetime
import json
import pathlib
import time

import pytest
from helpers import distinct_style_model

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "style_interpolation.ipynb"


def test_committed_notebook_is_small_and_has_no_outputs():
    assert NOTEBOOK.stat().st_size < 1_000_000
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert all(not cell.get("outputs") for cell in cells if cell["cell_type"] == "code")


@pytest.mark.alone  # two minutes on 2 cores: tests/run.sh runs it by itself, not beside another worker
@pytest.mark.tensorflow_only
def test_notebook_executes_headless_within_two_minutes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="pip install -e .[notebook]")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e .[notebook]")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    distinct_style_model(num_styles=4).save(model_dir / "model.keras")
    names = ["hokusai_great_wave", "munch_the_scream", "picabia_udnie", "van_gogh_starry_night"]
    (model_dir / "styles.json").write_text(json.dumps({"style_names": names}))
    monkeypatch.setenv("CIN_STYLE_MODEL", str(model_dir))
    monkeypatch.setenv("CIN_STYLE_NOTEBOOK_SIZE", "64")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend records the figures
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    began = time.perf_counter()
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    wall = time.perf_counter() - began
    # The kernel's own time per cell (nbclient's timing): in CI, nbclient intermittently waited out its whole cell
    # timeout after the slider cell had replied in 0.3 s (3 of 7 runs on 2026-12-06, never in the kernel), so the
    # wall clock, printed beside it, measures the harness there, not the notebook.
    took = sum(_cell_seconds(notebook))
    assert took < 120, f"the notebook's cells took {took:.0f} s ({wall:.0f} s in all): {_cell_seconds(notebook)}"
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert all(name in text for name in names)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # all styles, the strip, the 2-D blend
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1 or len(images) >= 4  # the slider, or its static fallback image


def _cell_seconds(notebook):
    """Seconds each code cell ran in the kernel (nbclient's timing), to tell a slow cell from a slow kernel start."""
    seconds = []
    for cell in notebook.cells:
        timing = cell.metadata.get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = (
                datetime.datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                for key in ("iopub.execute_input", "shell.execute_reply")
            )
            seconds.append(round((end - start).total_seconds(), 1))
    return seconds
