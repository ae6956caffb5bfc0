"""Parameter sweeps: the grid, the files, reuse, failing cells, and the same pictures on a Dask cluster
even when a worker dies mid-task."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import blobs, stripes, vgg_weights, web_server
from nst_lib import cli, files
from nst_lib import jobs as jobs_module
from nst_lib import cluster as clusters
from nst_lib.images import load_image, save_image
from nst_lib.jobs import InProcess
from nst_lib.store import Store
from nst_lib.sweep import grid, plan, sheet_axes, sweep

QUIET = dict(weights="random", precision="float32", device="cpu", progress=False, log=lambda line: None)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A content and a style picture as files, 64 px wide."""
    folder = tmp_path_factory.mktemp("pictures")
    save_image(blobs(), folder / "blobs.png")
    save_image(stripes(), folder / "stripes.png")
    return folder / "blobs.png", folder / "stripes.png"


def small_grid(pictures, steps=20):
    content, style = pictures
    return {"style_weight": [1e2, 1e4], "seed": [0, 1]}, dict(content=str(content), style=str(style), size=64,
                                                              steps=steps)


@pytest.fixture(scope="module")
def reference(pictures, tmp_path_factory):
    """The small sweep in this process, one thread per optimization."""
    axes, fixed = small_grid(pictures)
    return sweep(tmp_path_factory.mktemp("in_process"), axes, executor=InProcess(threads=1), **QUIET, **fixed)


@pytest.fixture(scope="module")
def cluster():
    started = clusters.local_cluster(workers=2, threads=1, size=64, log=lambda line: None)
    yield started
    started.close()


def same_cells(a, b):
    """Both sweeps made every cell, with the same pixels and the same losses."""
    assert [c["status"] for c in a.cells] == [c["status"] for c in b.cells] == ["ok"] * len(a.cells)
    for x, y in zip(a.cells, b.cells):
        assert x["settings"] == y["settings"] and x["losses"] == y["losses"] and x["key"] == y["key"]
        assert (a.folder / x["picture"]).read_bytes() == (b.folder / y["picture"]).read_bytes()


def nothing_half_written(folder):
    names = [path.name for path in folder.rglob("*")]
    assert not [name for name in names if name.endswith(".part")]
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())
    for path in folder.rglob("*.png"):
        load_image(path)


# --------------------------------------------------------------------------------------
# The grid and the keys.


def test_the_grid_is_every_combination_with_the_last_axis_fastest():
    cells = grid({"seed": [0, 1], "style_weight": [1.0, 10.0]}, {"content": "a", "style": "b"})
    assert [(c["style_weight"], c["seed"]) for c in cells] == [(1.0, 0), (1.0, 1), (10.0, 0), (10.0, 1)]
    assert cells[0]["content_layers"] == ("conv4_2",) and cells[0]["content"] == "a"
    with pytest.raises(ValueError, match="Unknown sweep axis 'colour'"):
        grid({"colour": [1]})
    with pytest.raises(ValueError, match="The axis seed needs a list of at least one value"):
        grid({"seed": []})


def test_the_contact_sheet_puts_the_longest_axis_across():
    axes = {"style_weight": [1, 2, 3], "init": ["noise", "content"], "seed": [0, 1], "size": [64]}
    assert sheet_axes(axes) == (["init", "seed"], "style_weight")
    # A swept axis named neither in the rows nor as the columns joins the rows: each cell has a tile of its own.
    assert sheet_axes(axes, rows=["style_weight"], columns="seed") == (["style_weight", "init"], "seed")
    assert sheet_axes(axes, rows=["style_weight"]) == (["style_weight", "seed"], "init")
    with pytest.raises(ValueError, match="'size' is not a swept axis"):
        sheet_axes(axes, columns="size")
    with pytest.raises(ValueError, match="The axis 'seed' is named twice for the contact sheet"):
        sheet_axes(axes, rows=["seed"], columns="seed")


def test_a_key_changes_with_what_changes_the_picture(pictures):
    axes, fixed = small_grid(pictures)
    model = dict(weights="random", precision="float32", device="cpu")
    key = plan(axes, fixed, **model).keys(1)[0]
    assert key == plan(axes, fixed, **model).keys(1)[0]  # made again: the same key
    assert key != plan(axes, fixed, **model).keys(2)[0]  # threads change the sums' order
    assert key != plan({**axes, "seed": [5]}, fixed, **model).keys(1)[0]
    assert key != plan(axes, fixed, **{**model, "weights": "oxford"}).keys(1)[0]
    assert key != plan(axes, fixed, **model, pre_relu=True).keys(1)[0]
    assert key != plan(axes, fixed, **{**model, "precision": "bfloat16"}).keys(1)[0]
    assert key != plan(axes, fixed, **model, pooling="avg").keys(1)[0]


# --------------------------------------------------------------------------------------
# In this process.


def test_a_sweep_writes_every_picture_a_table_and_a_contact_sheet(reference, artifacts):
    cells = reference.cells
    assert len(cells) == 4 and not reference.failed and reference.reused == 0
    assert all(c["evaluations"] == 20 and c["threads"] == 1 and c["seconds"] > 0 for c in cells)
    rows = reference.csv.read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("index,status,key,picture,content,style")
    assert json.loads(reference.json.read_text())[3]["settings"]["seed"] == 1
    sheet = load_image(reference.sheet)
    assert sheet.shape[-1] > 2 * 64 and sheet.shape[-2] > 2 * 48
    save_image(sheet, artifacts / "sweep_contact_sheet.png")
    # The style weight moved the style loss down, for each seed.
    style = {(c["settings"]["style_weight"], c["settings"]["seed"]): c["losses"]["style"] for c in cells}
    assert style[1e4, 0] < style[1e2, 0] and style[1e4, 1] < style[1e2, 1]
    nothing_half_written(reference.folder)


def test_a_sweep_run_again_reuses_its_finished_cells(reference, pictures, tmp_path):
    axes, fixed = small_grid(pictures)
    folder = tmp_path / "again"
    shutil.copytree(reference.folder, folder)
    (folder / reference.cells[2]["picture"]).unlink()  # as if interrupted before this picture was kept
    lines = []
    again = sweep(folder, {**axes, "seed": [0, 1, 2]}, executor=InProcess(threads=1),
                  **{**QUIET, "log": lines.append}, **fixed)
    assert lines[0].startswith(f"sweep: 1 finished cell could not be trusted and is computed again "
                               f"({reference.cells[2]['key']}: {reference.cells[2]['key']}.png is missing)")
    assert lines[1] == "sweep: 3 of 6 cells already done, reused"
    assert [bool(c.get("reused")) for c in again.cells] == [True, True, False, False, True, False]
    assert again.cells[3]["picture"] == reference.cells[2]["picture"]  # rerun: the same key, the same picture
    redone = (folder / again.cells[3]["picture"]).read_bytes()
    assert redone == (reference.folder / reference.cells[2]["picture"]).read_bytes()


def test_a_failing_cell_is_reported_and_the_others_are_kept(pictures, tmp_path, monkeypatch):
    content, style = pictures
    transfer, calls = jobs_module.transfer, []

    def failing_the_third(**options):  # a failure that no check can foresee, such as memory running out
        calls.append(options)
        if len(calls) == 3:
            raise RuntimeError("not enough memory for this cell")
        return transfer(**options)

    monkeypatch.setattr(jobs_module, "transfer", failing_the_third)
    lines = []
    result = sweep(tmp_path / "failing", {"size": [48, 64], "style_layers": [("conv1_1",), ("pool5",)]},
                   content=str(content), style=str(style), steps=2, executor=InProcess(threads=1),
                   **{**QUIET, "log": lines.append})
    assert [c["status"] for c in result.cells] == ["ok", "ok", "failed", "ok"]  # style layers, then sizes
    assert "not enough memory for this cell" in result.cells[2]["error"]
    assert any("cell 3" in line and "failed" in line for line in lines)
    assert "failed" in result.csv.read_text().splitlines()[3]
    nothing_half_written(result.folder)


def test_a_size_too_small_for_the_deepest_layer_is_refused_before_any_cell_runs(pictures, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("no optimization may start")

    monkeypatch.setattr("nst_lib.sweep.executor_from", never)
    content, style = pictures
    # pool5 needs a side of at least 32 px: at 24 px the content is 24 x 18.
    with pytest.raises(ValueError, match=f"At size 24, {content} is 24x18 px, but pool5 needs a side of at least "
                                         "32 px: use a larger size or shallower layers"):
        sweep(tmp_path / "small", {"size": [24, 64], "style_layers": [("conv1_1",), ("pool5",)]},
              content=str(content), style=str(style), steps=2, **QUIET)
    with pytest.raises(ValueError, match="At size 24, the texture is 24x24 px, but pool5 needs"):
        sweep(tmp_path / "small", {"size": [24, 64]}, style=str(style), style_layers=("pool5",), steps=2, **QUIET)
    assert not (tmp_path / "small").exists()


def test_every_swept_axis_shows_on_the_contact_sheet(pictures, tmp_path, monkeypatch):
    from nst_lib import sweep as module

    drawn = {}
    sheet = module.contact_sheet

    def kept(tiles, row_labels, column_labels, captions):
        drawn.update(tiles=tiles, rows=row_labels, columns=column_labels)
        return sheet(tiles, row_labels, column_labels, captions)

    monkeypatch.setattr(module, "contact_sheet", kept)
    content, style = pictures
    lines = []
    result = sweep(tmp_path / "sheet", {"init": ["noise", "content"], "style_weight": [1e2, 1e4], "seed": [0, 1]},
                   rows=["init"], columns="style_weight", content=str(content), style=str(style), size=32, steps=2,
                   executor=InProcess(threads=1), **{**QUIET, "log": lines.append})
    assert len(result.cells) == 8 and len(result.csv.read_text().splitlines()) == 9
    assert sum(tile is not None for row in drawn["tiles"] for tile in row) == 8  # every cell has its tile
    assert drawn["rows"] == ["init noise, seed 0", "init noise, seed 1", "init content, seed 0", "init content, seed 1"]
    assert drawn["columns"] == ["style_weight 100", "style_weight 10000"]
    assert "sweep: the contact sheet's rows also show seed, so that every cell has its tile" in lines


def test_a_weight_switched_off_is_still_checked(pictures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    _, style = pictures
    status = cli.main(["sweep", "--style", str(style), "--content-weight", "nan", "--steps", "2", "--size", "32",
                       "--weights", "random", "-o", str(tmp_path / "texture")])
    error = capsys.readouterr().err
    assert status == 2 and error == "error: content_weight=nan is out of range: use a number from 0 to 1e+12.\n"
    assert not (tmp_path / "texture").exists()  # no sweep.json with a bare NaN, which is not JSON


def test_a_list_option_that_names_nothing_is_refused(pictures, tmp_path, capsys):
    _, style = pictures
    with pytest.raises(SystemExit) as stop:
        cli.main(["sweep", "--content", ",", "--style", str(style), "-o", str(tmp_path / "texture")])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and len(error.strip().splitlines()) == 1, error
    assert error.startswith("error: argument --content: ',' names nothing: give one or more values")
    assert not (tmp_path / "texture").exists()  # not silently a texture sweep


def test_a_huge_grid_is_refused_unless_asked_for_and_a_sweep_says_its_size_first(pictures, tmp_path, capsys,
                                                                                  monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    content, style = pictures
    seeds = ",".join(map(str, range(101)))
    arguments = ["sweep", "--content", str(content), "--style", str(style), "--seed", seeds, "--style-weight",
                 "1,10,100,1e3,1e4,1e5,1e6,1e7,1e8,1e9", "--size", "32", "--steps", "3", "--weights", "random",
                 "--precision", "float32", "-o", str(tmp_path / "huge")]
    assert cli.main(arguments) == 2
    error = capsys.readouterr().err
    assert error == ("error: This sweep has 1,010 cells (3,030 evaluations), more than the 1,000 a sweep runs "
                     "unasked: to run it, give --max-cells 1010 (max_cells=1010), or sweep fewer values.\n")
    assert not (tmp_path / "huge").exists()
    small = arguments[:5] + ["--seed", "0,1", "--size", "32", "--steps", "3", "--weights", "random", "--precision",
                             "float32", "--max-cells", "2", "-o", str(tmp_path / "small")]
    assert cli.main(small) == 0
    said = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"sweep: 2 cells on in-process: 6 evaluations, about \d+ s \([\d.e-]+ s per evaluation at "
                        r"32 px, measured now\)", said[0]), said


def test_a_sweep_sent_to_a_server_that_is_not_a_dask_scheduler_stops_within_the_timeout(pictures, tmp_path):
    content, style = pictures
    with web_server() as address:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "nst_lib", "sweep", "--content", str(content), "--style",
                               str(style), "--size", "32", "--steps", "2", "--weights", "random", "--scheduler",
                               address, "-o", str(tmp_path / "remote")], capture_output=True, text=True, timeout=90)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {address} answers, but not as a Dask scheduler")
    assert len(done.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 60
    assert not (tmp_path / "remote").exists()  # no empty cells/ folder


def run_cli(*args):
    """``nst sweep`` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "nst_lib", "sweep", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NST_EXECUTOR": "inprocess"})


def test_the_command_line_sweeps_and_reuses(pictures, tmp_path):
    content, style = pictures
    arguments = ["--content", str(content), "--style", str(style), "--style-weight", "1,1e4", "--init",
                 "noise,content", "--size", "32", "--steps", "3", "--weights", "random", "--precision", "float32",
                 "-o", str(tmp_path / "cli")]
    done = run_cli(*arguments)
    assert done.returncode == 0, done.stderr
    assert "4 cells done, 0 failed" in done.stdout and (tmp_path / "cli" / "contact_sheet.png").is_file()
    again = run_cli(*arguments)
    assert again.returncode == 0 and "4 of 4 cells already done, reused" in again.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--style-weight", "1,-5"], "style_weight=-5 is out of range"),
        (["--init", "paint"], "Unknown init 'paint'"),
        (["--size", "8"], "size=8 is out of range"),
        (["--columns", "seed"], "'seed' is not a swept axis"),
        (["--threads", "0"], "--threads must be a whole number of at least 1"),
    ],
)
def test_a_bad_sweep_is_one_sentence(pictures, tmp_path, arguments, message, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    content, style = pictures
    status = cli.main(["sweep", "--content", str(content), "--style", str(style), "--steps", "2",
                       "-o", str(tmp_path / "bad"), *arguments])
    error = capsys.readouterr().err
    assert status == 2 and message in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "bad" / "sweep.csv").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(pictures, tmp_path, capsys, monkeypatch):
    from test_files import unwritable_folder

    def never(*args, **kwargs):
        raise AssertionError("no optimization may start")

    monkeypatch.setattr("nst_lib.sweep.executor_from", never)
    content, style = pictures
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    shutil.copy(content, earlier / "contact_sheet.png")  # the contact sheet of an earlier sweep, used as content
    locked = unwritable_folder(tmp_path)
    long_name = tmp_path / ("a" * 256)
    cases = [
        (notes, str(content), f"--output {notes} is a file: give a folder"),
        (locked / "sweeps", str(content), f"--output {locked / 'sweeps'}: the folder {locked} takes no new folders"),
        (notes / "sweeps", str(content), f"--output {notes / 'sweeps'}: {notes} is a file, not a folder."),
        (long_name, str(content), "the folder name is 256 bytes long, and this file system allows 255"),
        (earlier, str(earlier / "contact_sheet.png"), "is the sweep's contact_sheet.png, which the sweep writes"),
    ]
    for output, picture, message in cases:
        status = cli.main(["sweep", "--content", picture, "--style", str(style), "--steps", "2", "--weights",
                           "random", "--precision", "float32", "-o", str(output)])
        error = capsys.readouterr().err
        assert status == 2 and message in error and len(error.strip().splitlines()) == 1, (output, error)
    assert notes.read_text() == "my notes"
    assert (earlier / "contact_sheet.png").read_bytes() == content.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "locked") == ["earlier", "notes.txt"]
    assert os.listdir(earlier) == ["contact_sheet.png"]


@pytest.mark.parametrize("stop, code", [(KeyboardInterrupt, 130), (files.Terminated, 143)])
def test_a_stopped_sweep_says_which_cells_it_kept(pictures, tmp_path, capsys, monkeypatch, stop, code):
    keep = Store.put

    def stopped_at_the_third(store, key, result, note=None):
        if len(list(store.folder.glob("*.json"))) == 2:
            raise stop
        return keep(store, key, result, note)

    monkeypatch.setattr(Store, "put", stopped_at_the_third)
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    content, style = pictures
    folder = tmp_path / "stopped"
    arguments = ["sweep", "--content", str(content), "--style", str(style), "--seed", "0,1,2,3", "--size", "32",
                 "--steps", "2", "--weights", "random", "--precision", "float32", "-o", str(folder)]
    assert cli.main(arguments) == code
    error = capsys.readouterr().err
    assert f"\ninterrupted: 2 of 4 cells are finished in {folder / 'cells'}, and the same sweep run again reuses " \
           "them; sweep.json, sweep.csv and contact_sheet.png were not written.\n" in error, error
    assert "Traceback" not in error
    nothing_half_written(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["cells"] and len(os.listdir(folder / "cells")) == 6
    monkeypatch.setattr(Store, "put", keep)
    assert cli.main(arguments) == 0
    assert "2 of 4 cells already done, reused" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# On a local cluster.


def test_a_cluster_sweep_gives_the_same_pictures(reference, pictures, cluster, tmp_path):
    axes, fixed = small_grid(pictures)
    same_cells(reference, sweep(tmp_path / "cluster", axes, executor=cluster, **QUIET, **fixed))


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_stops_a_sweep_on_a_local_cluster_in_one_line(pictures, tmp_path, name, code):
    """Ctrl-C, or SIGTERM, sent to the whole process group: the workers get it too."""
    content, style = pictures
    folder = tmp_path / "stopped"
    command = [sys.executable, "-m", "nst_lib", "sweep", "--content", str(content), "--style", str(style), "--seed",
               "0,1,2,3,4,5", "--size", "32", "--steps", "30", "--weights", "random", "--precision", "float32",
               "--executor", "local", "--threads", "1", "-o", str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("cells/*.json"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, getattr(signal, name))  # as a terminal's Ctrl-C: to the command and every worker
    _, stderr = process.communicate(timeout=60)
    finished = len(list(folder.glob("cells/*.json")))
    assert process.returncode == code and "Traceback" not in stderr, stderr
    assert stderr.endswith(f"\ninterrupted: {finished} of 6 cells are finished in {folder / 'cells'}, and the same "
                           "sweep run again reuses them; sweep.json, sweep.csv and contact_sheet.png were not "
                           "written.\n"), stderr
    nothing_half_written(folder)


def test_a_worker_killed_mid_task_costs_only_a_rerun(reference, pictures, cluster, tmp_path):
    axes, fixed = small_grid(pictures)
    client = cluster.client
    before = client.run(os.getpid)
    finished = {}
    worker = threading.Thread(
        target=lambda: finished.update(result=sweep(tmp_path / "killed", axes, executor=cluster, **QUIET, **fixed))
    )
    worker.start()
    deadline = time.monotonic() + 120
    busy = []
    while not busy and time.monotonic() < deadline:  # a worker that has begun a task (loading or optimizing)
        executing = client.run(lambda dask_worker: len(dask_worker.state.executing))
        busy = [address for address, count in executing.items() if count]
        time.sleep(0.02)
    assert busy, "no worker took a task"
    os.kill(before[busy[0]], signal.SIGKILL)
    worker.join(timeout=300)
    assert "result" in finished, "the sweep did not finish"
    same_cells(reference, finished["result"])
    nothing_half_written(tmp_path / "killed")
    assert before[busy[0]] not in client.run(os.getpid).values()  # the worker was killed and replaced


# --------------------------------------------------------------------------------------
# Nothing on disk trusted blindly, every option that changes a picture in the keys.


def tiny_sweep(pictures, folder, *more):
    content, style = pictures
    return ["sweep", "--content", str(content), "--style", str(style), "--style-weight", "1,1e4", "--seed", "0,1",
            "--size", "32", "--steps", "3", "--weights", "random", "--precision", "float32", "-o", str(folder), *more]


def swept(arguments, capsys):
    """Run ``nst sweep`` here; its exit status, what it printed, and sweep.json's records."""
    status = cli.main(arguments)
    said = capsys.readouterr()
    folder = Path(arguments[arguments.index("-o") + 1])
    records = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").is_file() else []
    return status, said.out + said.err, records


def edited(path, change):
    """Apply ``change`` to every number under a key named "style" in a JSON file, wherever it is."""
    def walk(value, name=None):
        if isinstance(value, dict):
            return {key: walk(item, key) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, name) for item in value]
        return change(value) if name == "style" and isinstance(value, float) else value

    path.write_text(json.dumps(walk(json.loads(path.read_text())), indent=1))


def test_a_cell_picture_comes_from_its_key_never_from_its_record(pictures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    folder = tmp_path / "sweep"
    status, _, first = swept(tiny_sweep(pictures, folder), capsys)
    assert status == 0
    decoy = tmp_path / "decoy.png"
    save_image(stripes(), decoy)
    for record, picture in zip(first[:2], [str(decoy), "../../../../etc/passwd"]):
        path = folder / "cells" / f"{record['key']}.json"
        path.write_text(path.read_text().replace("{", f'{{"picture": {json.dumps(picture)},', 1))
    status, said, again = swept(tiny_sweep(pictures, folder), capsys)
    assert status == 0 and "passwd" not in said, said
    assert "sweep: 2 finished cells could not be trusted and are computed again" in said
    assert "sweep: 2 of 4 cells already done, reused" in said
    for before, after in zip(first, again):
        assert after["picture"] == f"cells/{after['key']}.png" and after["key"] == before["key"]
        assert (folder / after["picture"]).read_bytes() != decoy.read_bytes()
    assert "decoy" not in (folder / "sweep.csv").read_text()


def test_a_damaged_cell_is_computed_again_and_said_once(pictures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    folder = tmp_path / "sweep"
    status, _, first = swept(tiny_sweep(pictures, folder), capsys)
    assert status == 0
    cells = folder / "cells"
    (cells / f"{first[0]['key']}.json").write_text("[]")
    (cells / f"{first[1]['key']}.json").write_text('{"status": "ok"}')
    (cells / f"{first[2]['key']}.png").write_bytes(b"\x89PNG\r\n\x1a\n no longer a picture")
    record = cells / f"{first[3]['key']}.json"
    record.write_text(re.sub(r'"seconds": [0-9.e+-]+', '"seconds": "fast"', record.read_text()))
    status, said, again = swept(tiny_sweep(pictures, folder), capsys)
    assert status == 0 and "Traceback" not in said, said
    assert said.count("could not be trusted") == 1 and "4 finished cells could not be trusted" in said
    assert [cell["status"] for cell in again] == ["ok"] * 4 and all(isinstance(c["seconds"], float) for c in again)
    for before, after in zip(first, again):  # the same keys, computed again: the same pixels and losses
        assert after["losses"] == before["losses"] and load_image(folder / after["picture"]).shape[-1] == 32
    status, said, _ = swept(tiny_sweep(pictures, folder), capsys)  # repaired: all four reused
    assert status == 0 and "4 of 4 cells already done, reused" in said and "trusted" not in said


def test_losses_edited_after_the_fact_never_reach_the_table(pictures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    folder = tmp_path / "sweep"
    status, _, first = swept(tiny_sweep(pictures, folder), capsys)
    assert status == 0
    edited(folder / "cells" / f"{first[0]['key']}.json", lambda value: value / 1000)
    status, said, again = swept(tiny_sweep(pictures, folder), capsys)
    assert status == 0 and "1 finished cell could not be trusted" in said, said
    assert again[0]["losses"] == first[0]["losses"] and not again[0]["reused"]


def test_pre_relu_reaches_the_cells(pictures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    folder = tmp_path / "sweep"
    status, _, first = swept(tiny_sweep(pictures, folder), capsys)
    status, said, again = swept(tiny_sweep(pictures, folder, "--pre-relu"), capsys)
    assert status == 0 and "already done" not in said, said
    assert {cell["key"] for cell in again}.isdisjoint(cell["key"] for cell in first)
    assert [c["losses"] for c in again] != [c["losses"] for c in first]  # another network reading: other pictures


def test_a_weights_file_replaced_under_the_same_name_gives_new_cells(pictures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    weights = vgg_weights(tmp_path / "vgg.pt", seed=0)
    folder = tmp_path / "sweep"
    arguments = tiny_sweep(pictures, folder)
    arguments[arguments.index("random")] = str(weights)
    status, _, first = swept(arguments, capsys)
    assert status == 0
    vgg_weights(weights, seed=1)
    status, said, again = swept(arguments, capsys)
    assert status == 0 and "already done" not in said, said
    assert [c["losses"] for c in again] != [c["losses"] for c in first]


def test_a_value_given_twice_is_one_cell(pictures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NST_EXECUTOR", "inprocess")
    content, style = pictures
    folder = tmp_path / "sweep"
    arguments = ["sweep", "--content", str(content), "--style", str(style), "--style-weight", "1e4,10000,1e4",
                 "--size", "32", "--steps", "3", "--weights", "random", "--precision", "float32", "-o", str(folder)]
    status, said, records = swept(arguments, capsys)
    assert status == 0 and "sweep: 1 cells on in-process" in said and "1 cells done, 0 failed" in said, said
    assert "style_weight gave a value more than once: each value is one cell" in said
    assert len(records) == 1 and len((folder / "sweep.csv").read_text().splitlines()) == 2


def test_every_option_of_the_command_changes_the_keys_or_says_why_not(pictures, tmp_path):
    """Walk `nst sweep`'s options: each one either changes every cell's key, or is declared as changing no
    picture (``cli.sweep.NOT_IN_PICTURES``). An option added without deciding fails here."""
    from nst_lib.cli import build_parser
    from nst_lib.cli import sweep as command

    content, style = pictures
    other = tmp_path / "other.png"
    save_image(stripes(period=4), other)
    base = ["sweep", "--content", str(content), "--style", str(style), "--size", "32", "--steps", "3", "--weights",
            "random", "--precision", "float32", "--device", "cpu", "-o", str(tmp_path / "out")]
    changes = {
        "content": str(other), "style": str(other), "content_weight": "2", "style_weight": "10", "tv_weight": "1",
        "content_layers": "conv3_1", "style_layers": "conv1_1", "init": "content", "seed": "1", "size": "48",
        "steps": "4", "weights": str(vgg_weights(tmp_path / "vgg.pt", seed=0)), "pooling": "avg",
        "precision": "bfloat16", "pre_relu": None, "device": "cuda", "threads": "3",
    }
    parser = build_parser()

    def cell_keys(arguments):
        given = command.sweep_arguments(parser.parse_args(arguments))
        model = {name: given[name] for name in ("weights", "pooling", "precision", "pre_relu", "device")}
        work = plan(given["axes"], **model)
        return work.keys(given["threads"] or 1)

    before = cell_keys(base)
    sweep_parser = parser._subparsers._group_actions[0].choices["sweep"]
    options = [action for action in sweep_parser._actions if action.option_strings and action.dest != "help"]
    undecided = []
    for action in options:
        if action.dest in command.NOT_IN_PICTURES:
            continue
        if action.dest not in changes:
            undecided.append(action.dest)
            continue
        flag = action.option_strings[-1]
        value = changes[action.dest]
        arguments = [*base, flag] if value is None else [*base, flag, value]
        if flag in base:  # replace the base's own value
            at = base.index(flag)
            arguments = [*base[:at], *base[at + 2:], flag, value]
        after = cell_keys(arguments)
        assert after != before and set(after).isdisjoint(before), f"{flag} {value} changes no key"
    assert undecided == []
