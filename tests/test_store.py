"""The result store: exact round trips, nothing on disk trusted blindly, a batch that runs each key once."""

import json

import numpy as np
import pytest
import torch
from conftest import blobs, stripes

from nst_lib import keys
from nst_lib.jobs import InProcess, Job, JobError
from nst_lib.losses import LossSpec
from nst_lib.optimize import transfer
from nst_lib.store import Store, Untrusted


@pytest.fixture(scope="module")
def result(random_vgg):
    """One small optimization, as transfer returned it."""
    return transfer(blobs(), [stripes()], model=random_vgg, steps=6, progress=False)


def kept(folder, result, key="0123456789abcdef", **note):
    store = Store(folder, log=lambda line: None)
    store.put(key, result, note)
    return Store(folder, log=lambda line: None), key  # a fresh store: nothing remembered in memory


def test_a_result_read_back_is_exactly_what_the_optimization_returned(result, tmp_path):
    store, key = kept(tmp_path, result, settings={"seed": 0})
    again = store.get(key)
    assert again is not result and torch.equal(again.image, result.image) and again.image.dtype == torch.float32
    for name in ("history", "times", "evaluations", "seconds", "events", "stopped", "best_index", "params"):
        assert getattr(again, name) == getattr(result, name), name
    assert again.final_losses == result.final_losses
    assert store.get(key) is again  # read once per process: the same object every time
    assert store.note(key) == {"settings": {"seed": 0}}
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{key}.json", f"{key}.npy", f"{key}.png"]
    assert store.picture(key) == tmp_path / f"{key}.png" and store.get("fedcba9876543210") is None


def damage(folder, key, how):
    """Change the kept files of ``key`` as a person (or a crash, or a full disk) might."""
    record = folder / f"{key}.json"
    data = json.loads(record.read_text())
    if how == "a list":
        record.write_text("[]")
    elif how == "a status only":
        record.write_text('{"status": "ok"}')
    elif how == "half a record":
        record.write_text(record.read_text()[:100])
    elif how == "another picture":
        (folder / f"{key}.png").write_bytes(b"\x89PNG not a picture")
    elif how == "no picture":
        (folder / f"{key}.png").unlink()
    elif how == "other pixels":
        np.save(folder / f"{key}.npy", np.zeros((1, 3, 48, 64), np.float32))
    elif how == "edited losses":
        data["result"]["history"]["style"] = [0.0] * len(data["result"]["history"]["style"])
        record.write_text(json.dumps(data))
    elif how == "seconds that are not a number":  # the digest made again, as a careful forger would
        data["result"]["seconds"] = "fast"
        data["digest"] = keys.digest({name: value for name, value in data.items() if name != "digest"})
        record.write_text(json.dumps(data))
    elif how == "another result's record":
        data["key"] = "fedcba9876543210"
        record.write_text(json.dumps(data))


@pytest.mark.parametrize("how, reason", [
    ("a list", "its record is not the record of a finished result"),
    ("a status only", "its record is not the record of a finished result"),
    ("half a record", "its record is not JSON"),
    ("another picture", ".png was changed after it was written"),
    ("no picture", ".png is missing"),
    ("other pixels", ".npy was changed after it was written"),
    ("edited losses", "its record was changed after it was written"),
    ("seconds that are not a number", "its seconds is 'fast', not a number"),
    ("another result's record", "its record is not the record of a finished result"),
])
def test_a_damaged_or_edited_result_is_not_trusted(result, tmp_path, how, reason):
    store, key = kept(tmp_path, result)
    damage(tmp_path, key, how)
    with pytest.raises(Untrusted, match=reason):
        store.get(key)
    said = []
    store.log = said.append
    assert store.found([key, key]) == {}  # not finished: whoever asked computes it again
    assert said == [f"1 kept result could not be trusted and is computed again ({key}: {store_reason(store, key)})."]


def store_reason(store, key):
    try:
        store.get(key)
    except Untrusted as reason:
        return str(reason)


def jobs(steps=4):
    return [Job(dict(content=blobs(), styles=[stripes()], loss=LossSpec(style_weight=w), steps=steps), f"weight {w}")
            for w in (1e2, 1e4)]


class Counting(InProcess):
    """An in-process executor that counts the jobs it was given."""

    def run(self, model, batch, **bar):
        self.ran = getattr(self, "ran", 0) + len(batch)
        return super().run(model, batch, **bar)


def test_a_batch_runs_each_key_once_and_keeps_what_finishes(random_vgg, tmp_path):
    store = Store(tmp_path, log=lambda line: None)
    batch = jobs()
    batch.insert(1, batch[0])  # the same optimization twice in one batch
    batch_keys = [keys.job_key(job.options, random_vgg.settings, "cpu", 1) for job in batch]
    executor = Counting(threads=1)
    outcomes = sorted(store.run(executor, random_vgg, batch, batch_keys))
    assert executor.ran == 2 and [reused for _, _, reused in outcomes] == [False, True, False]
    assert outcomes[0][1] is outcomes[1][1]
    again = Counting(threads=1)
    outcomes = sorted(Store(tmp_path).run(again, random_vgg, batch, batch_keys))
    assert getattr(again, "ran", 0) == 0 and all(reused for _, _, reused in outcomes)  # all read back


def test_a_failed_job_is_reported_and_not_kept(random_vgg, tmp_path):
    store = Store(tmp_path, log=lambda line: None)
    bad = Job(dict(content=blobs(), styles=[stripes()], init="paint", steps=2), "bad init")
    (outcome,) = store.run(InProcess(threads=1), random_vgg, [bad], ["0000000000000000"])
    assert isinstance(outcome[1], JobError) and not list(tmp_path.iterdir())


def test_a_run_stopped_early_is_not_kept(random_vgg, tmp_path):
    evaluations = []
    stop = lambda: evaluations.append(1) or len(evaluations) > 3  # noqa: E731
    stopped = transfer(blobs(), [stripes()], model=random_vgg, steps=6, progress=False, should_stop=stop)
    store = Store(tmp_path)
    store.put("0000000000000000", stopped)
    assert stopped.stopped and store.get("0000000000000000") is None


def test_carrying_brings_the_results_of_this_code_and_leaves_the_source(result, tmp_path):
    source, target = tmp_path / "before", tmp_path / "after"
    old, key = kept(source, result)
    kept(source, result, key="1111111111111111")
    record = source / "1111111111111111.json"  # a result of other code: never asked for again
    data = json.loads(record.read_text())
    data["code"] = "other"
    record.write_text(json.dumps(data))
    before = {path.name: path.read_bytes() for path in source.iterdir()}
    assert Store(target).carry(source) == 1
    assert sorted(path.name for path in target.iterdir()) == [f"{key}.json", f"{key}.npy", f"{key}.png"]
    assert torch.equal(Store(target).get(key).image, result.image)
    assert {path.name: path.read_bytes() for path in source.iterdir()} == before
    assert Store(target).carry(source) == 0  # already there


def test_a_store_that_does_not_remember_checks_the_pictures_and_lets_them_go(result, tmp_path):
    kept(tmp_path, result)
    store = Store(tmp_path, remember=False)
    (found,) = store.found(["0123456789abcdef"]).values()
    assert found.image is None and found.history == result.history  # a sweep of many cells holds no pixels
    damage(tmp_path, "0123456789abcdef", "other pixels")
    assert store.found(["0123456789abcdef"]) == {}
