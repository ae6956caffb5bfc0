"""Settings for every test run, the notebooks checked by nbval included."""

import os
from pathlib import Path

MIRROR = Path(__file__).resolve().parent.parent / "shared" / "assets"

# Named images come from the local mirror when it is there (as in .ci/run).
if MIRROR.is_dir():
    os.environ.setdefault("NST_ASSET_MIRROR", str(MIRROR))
# Notebooks run under nbval print no progress bars (they would differ from run to run).
os.environ["NST_PROGRESS"] = "off"
# Batches run in the test process whatever the machine (tests that want a Dask cluster start one).
os.environ.setdefault("NST_EXECUTOR", "inprocess")
