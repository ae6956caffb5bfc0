"""Keys: what a result depends on, the same in every process, and files read in chunks."""

import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch
from conftest import blobs, stripes

from nst_lib import keys
from nst_lib.losses import LossSpec
from nst_lib.vgg import CONV_LAYERS, VGG19, fast_bfloat16

RANDOM = dict(weights="random", precision="float32")


def options(**changes):
    return {"content": blobs(), "styles": [stripes()], "loss": LossSpec(style_weight=1e4), "seed": 0, "steps": 20,
            **changes}


def key(job=None, model=None, device="cpu", threads=1):
    return keys.job_key(options() if job is None else job, RANDOM if model is None else model, device, threads)


def test_a_job_key_follows_everything_that_changes_the_picture():
    same = key()
    assert key() == same
    changed = {
        "content pixels": key(options(content=blobs().flip(-1))),
        "style pixels": key(options(styles=[stripes(period=4)])),
        "a second style": key(options(styles=[stripes(), blobs()])),
        "the loss": key(options(loss=LossSpec(style_weight=1e3))),
        "the seed": key(options(seed=1)),
        "the steps": key(options(steps=21)),
        "the start": key(options(init="content")),
        "a starting picture": key(options(init=blobs())),
        "the optimizer": key(options(optimizer="adam")),
        "the learning rate": key(options(lr=0.5)),
        "the line search": key(options(line_search=True)),
        "coarse-to-fine": key(options(scales=2)),
        "the colours kept": key(options(preserve_colors=True)),
        "the weights": key(model={**RANDOM, "seed": 1}),
        "the pooling": key(model={**RANDOM, "pooling": "avg"}),
        "the precision": key(model={**RANDOM, "precision": "bfloat16"}),
        "the pre-ReLU reading": key(model={**RANDOM, "pre_relu": True}),
        "the device": key(device="cuda"),
        "the threads": key(threads=2),
    }
    assert [what for what, other in changed.items() if other == same] == []
    assert len(set(changed.values())) == len(changed)


def test_what_does_not_change_the_picture_does_not_change_the_key():
    same = key()
    assert key(options(progress=False, description="a label", callback=print, callback_every=3)) == same
    assert key(options(loss=None)) == key(options(loss=LossSpec()))  # no loss is the default loss
    assert key(options(styles=stripes())) == key(options(styles=[stripes()]))  # one style, or a list of one
    assert key(options(steps=300)) == key({k: v for k, v in options().items() if k != "steps"})  # the default
    # 1e4 and 10000 are one value, whichever way they were typed.
    assert key(options(loss=LossSpec(style_weight=10000))) == same
    assert key(model={**RANDOM, "weights": "random", "channels_last": True}) == same  # VGG19's own default
    assert key(device="cuda:1") == key(device="cuda")  # a worker sees its GPU as its only one
    picked = "bfloat16" if fast_bfloat16(torch.device("cpu")) else "float32"  # what "auto" runs here
    assert key(model={**RANDOM, "precision": "auto"}) == key(model={**RANDOM, "precision": picked})


def test_a_weights_file_counts_by_its_contents_not_its_name(tmp_path):
    first, second = tmp_path / "vgg.pt", tmp_path / "renamed.pt"
    state = {"features.0.weight": torch.zeros(1)}
    torch.save(state, first)
    shutil.copy(first, second)
    assert key(model={**RANDOM, "weights": str(first)}) == key(model={**RANDOM, "weights": str(second)})
    before = key(model={**RANDOM, "weights": str(first)})
    torch.save({"features.0.weight": torch.ones(1)}, first)  # replaced under the same name
    assert key(model={**RANDOM, "weights": str(first)}) != before


# A job's key computed in a fresh interpreter: no id(), hash seed or dict order may leak into it.
ELSEWHERE = """
import sys
from conftest import blobs, stripes
from nst_lib import keys
from nst_lib.losses import LossSpec
job = {"seed": 0, "steps": 20, "loss": LossSpec(style_weight=1e4), "styles": [stripes()], "content": blobs()}
print(keys.job_key(job, {"precision": "float32", "weights": "random"}, "cpu", 1))
"""


def test_a_key_is_the_same_in_another_process():
    tests = Path(__file__).resolve().parent
    elsewhere = subprocess.run([sys.executable, "-c", ELSEWHERE], capture_output=True, text=True, cwd=tests,
                               env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout.strip() == key()


def test_canonical_values_refuse_what_has_no_stable_form():
    assert keys.canonical({"b": (1, 2.0), "a": Path("x")}) == '{"a":"x","b":[1,2]}'
    assert keys.digest({"a": 1, "b": 2}) == keys.digest({"b": 2, "a": 1})
    with pytest.raises(TypeError, match="A object cannot be part of a key"):
        keys.digest({"a": object()})
    with pytest.raises(TypeError, match="needs text keys"):
        keys.digest({1: "a"})


def test_the_code_fingerprint_follows_the_library_but_not_the_page(tmp_path, monkeypatch):
    package = tmp_path / "nst_lib"
    shutil.copytree(Path(keys.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(keys, "__file__", str(package / "keys.py"))
    before = keys.code_fingerprint()
    (package / "page.py").write_text((package / "page.py").read_text() + "\n# a new page rule\n")
    assert keys.code_fingerprint() == before
    (package / "losses.py").write_text((package / "losses.py").read_text() + "\n# a new loss\n")
    assert keys.code_fingerprint() != before


def test_a_model_fingerprint_is_the_weights_themselves(random_vgg):
    assert keys.model_fingerprint(random_vgg) == keys.model_fingerprint(VGG19(**random_vgg.settings))
    assert keys.model_fingerprint(random_vgg) != keys.model_fingerprint(VGG19("random", seed=1))


def test_a_file_is_read_in_chunks_never_whole(tmp_path):
    big = tmp_path / "video.mp4"
    with open(big, "wb") as handle:  # 256 MB that take no disk: a sparse file
        handle.truncate(256 * 2**20)
    tracemalloc.start()
    try:
        keys.file_digest(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_images_digest_keeps_the_checkpoints_format():
    """The digest generator checkpoints have always held for their training images (so that those written
    before keys.py existed still resume)."""
    import hashlib

    images = [stripes(), blobs()]
    hasher = hashlib.sha256()
    for image in images:
        hasher.update(str(tuple(image.shape)).encode())
        hasher.update(image.float().contiguous().numpy().tobytes())
    assert keys.images_digest(images) == hasher.hexdigest()[:16]
    assert json.dumps(keys.plain({"layers": CONV_LAYERS[:2]})) == '{"layers": ["conv1_1", "conv1_2"]}'
