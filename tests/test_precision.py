"""What "auto" computes in: chosen by a measurement, remembered per machine, explained."""

import json
import os
import subprocess
import sys

import pytest
import torch

from nst_lib import precision, timing
from nst_lib.vgg import describe_device, precision_choice

CPU = torch.device("cpu")


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache and nothing chosen yet in this process."""
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision, "_chosen", {})
    monkeypatch.setattr(precision, "_onednn_bfloat16", lambda: True)
    return tmp_path


def timings(float32: float, bfloat16: float):
    """A stand-in for the measurement: each precision's evaluations take these seconds."""
    def measured(tasks, repeats):
        return {"float32": [float32] * repeats, "bfloat16": [bfloat16] * repeats}
    return measured


def choose():
    return precision_choice(CPU)


def machine():
    return precision.machine_key(describe_device(CPU))


@pytest.mark.parametrize("float32, bfloat16, chosen", [(0.4, 0.2, "bfloat16"), (0.4, 1.1, "float32"),
                                                       (0.4, 0.37, "float32")])
def test_auto_takes_bfloat16_only_where_it_measures_faster(fresh, monkeypatch, float32, bfloat16, chosen):
    monkeypatch.setattr(timing, "alternated", timings(float32, bfloat16))
    choice = choose()
    assert choice.precision == chosen
    assert f"{float32 / bfloat16:.2f}x" in choice.reason and f"{bfloat16:.3f} s per evaluation" in choice.reason
    remembered = json.loads((fresh / precision.FILE).read_text())["machines"][machine()]
    assert remembered["precision"] == chosen and remembered["ratio"] == round(float32 / bfloat16, 2)


def test_the_choice_is_measured_once_per_machine_and_read_back(fresh, monkeypatch):
    monkeypatch.setattr(timing, "alternated", timings(0.4, 0.2))
    first = choose()
    monkeypatch.setattr(precision, "_chosen", {})  # as a new process sees it

    def not_again(*args, **kwargs):
        raise AssertionError("measured twice")
    monkeypatch.setattr(timing, "alternated", not_again)
    assert choose() == first
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # fewer instructions: another machine
    with pytest.raises(AssertionError, match="measured twice"):
        choose()


def test_a_broken_record_is_measured_again_and_replaced(fresh, monkeypatch):
    (fresh / precision.FILE).write_text("{not json")
    monkeypatch.setattr(timing, "alternated", timings(0.4, 0.2))
    assert choose().precision == "bfloat16"
    (fresh / precision.FILE).write_text(json.dumps({"machines": {machine(): {"precision": "int4"}}}))
    monkeypatch.setattr(precision, "_chosen", {})
    monkeypatch.setattr(timing, "alternated", timings(0.4, 0.8))
    assert choose().precision == "float32"


def test_where_onednn_has_no_bfloat16_kernels_nothing_is_measured(fresh, monkeypatch):
    monkeypatch.setattr(precision, "_onednn_bfloat16", lambda: False)
    monkeypatch.setattr(timing, "alternated", None)
    choice = choose()
    assert choice.precision == "float32" and "no bfloat16 kernels" in choice.reason
    assert not (fresh / precision.FILE).exists()


def test_emulated_bfloat16_is_measured_slower_and_not_chosen(tmp_path):
    """oneDNN limited to AVX-512 without its BF16 instructions still offers bfloat16, emulated: measured, it
    loses to float32 (on a processor without AVX-512, oneDNN offers none). A real measurement, no stand-in."""
    code = ("import torch; from nst_lib.vgg import VGG19, precision_choice\ncpu = torch.device('cpu')\n"
            "print(precision_choice(cpu).precision, VGG19('random').uses_bfloat16(cpu))")
    environment = {**os.environ, "NST_CACHE_DIR": str(tmp_path), "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["float32", "False"]
