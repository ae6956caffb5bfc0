"""Settings for every test run, the notebooks checked by nbval included."""

import os
import shutil
import tempfile
from pathlib import Path

MIRROR = Path(__file__).resolve().parent.parent / "shared" / "assets"

# Named images come from the local mirror when it is there (as in .ci/run).
if MIRROR.is_dir():
    os.environ.setdefault("NST_ASSET_MIRROR", str(MIRROR))
# Notebooks run under nbval print no progress bars (they would differ from run to run).
os.environ["NST_PROGRESS"] = "off"
# Batches run in the test process whatever the machine (tests that want a Dask cluster start one).
os.environ.setdefault("NST_EXECUTOR", "inprocess")
# A notebook that leaves its profile open runs "standard" when opened by hand; under the tests, "quick".
os.environ["NST_PROFILE"] = "quick"
# The notebooks that nbval runs keep their optimizations in one store for the session (as a report build's
# sections do), not beside the committed notebooks.
RESULTS = tempfile.mkdtemp(prefix="nst-test-results-")
os.environ["NST_RESULTS"] = RESULTS


def pytest_unconfigure(config):
    shutil.rmtree(RESULTS, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """nbval compares the outputs a notebook stores. A notebook committed without outputs (see
    docs/report.md) has none to compare: its cells must run without error, and its cells tagged "check",
    which assert what the outputs would have shown, are its test."""
    for item in items:
        book = getattr(getattr(item, "parent", None), "nb", None)
        stored = book is not None and any(cell.get("outputs") for cell in book.cells if cell.cell_type == "code")
        if type(item).__name__ == "IPyNbCell" and book is not None and not stored:
            item.options["check"] = False
