"""bench/precision.py --quick: the measurement that shows whether "auto" picks the faster precision here."""

import json
import subprocess
import sys

from conftest import ROOT

from nst_lib import precision


def test_the_precision_benchmark_runs_and_auto_picks_the_faster_precision(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "precision.py"), "--quick", "--repeats", "2"],
                          capture_output=True, text=True, check=True, timeout=600)
    assert "| this processor |" in done.stdout and "auto chose" in done.stdout
    row, = json.loads((ROOT / "bench" / "results" / "precision_quick.json").read_text())
    assert row["chosen"] in ("float32", "bfloat16") and row["reason"]
    ratio = row["float32"] / row["bfloat16"]
    if not 1 / precision.FASTER < ratio < precision.FASTER:  # outside the band where either choice is fair
        assert row["right"], row
