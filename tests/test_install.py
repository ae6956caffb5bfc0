"""The package as a user installs it: a wheel in a fresh virtual environment, used outside the checkout.

The wheel is built from the files git tracks (as they are in the working tree), offline and without build
isolation: what a clean clone builds, never a file left untracked in the checkout. The fresh
environment gets the wheel alone (``--no-deps``) and reaches its dependencies (torch and the rest, as pinned in
requirements.txt) through a ``.pth`` file naming the site-packages folders of the environment running the tests,
so nothing is downloaded twice. Every command then runs from a folder outside the checkout with PYTHONPATH
cleared, and each one checks that what it used came from the wheel.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nst_lib.images import load_image

ROOT = Path(__file__).resolve().parent.parent
PINNED_EXTRAS = ("report", "notebooks", "test")  # what `make` installs; the cluster extra is installed on demand


def declared() -> dict[str, list[Requirement]]:
    """pyproject.toml's requirements: ``dependencies`` under "", then one list per extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {group: [Requirement(text) for text in texts] for group, texts in groups.items()}


def pinned() -> dict[str, Requirement]:
    """requirements.txt, by canonical name."""
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    return {canonicalize_name(r.name): r for r in map(Requirement, filter(None, lines))}


def test_requirements_pin_exactly_the_packages_pyproject_declares():
    pins = pinned()
    groups = declared()
    for name, pin in pins.items():
        (specifier,) = pin.specifier
        assert specifier.operator == "==", f"{pin} is not an exact pin"
    ranges = {}
    for group, requirements in groups.items():
        for requirement in requirements:
            if canonicalize_name(requirement.name) != "nst-lib":
                ranges.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    assert set(pins) <= set(ranges), f"pinned but declared nowhere in pyproject.toml: {set(pins) - set(ranges)}"
    for name, requirements in ranges.items():
        for requirement in requirements:
            if name in pins:
                version = next(iter(pins[name].specifier)).version
                assert requirement.specifier.contains(version), f"{pins[name]} is outside {requirement}"
    needed = {canonicalize_name(r.name) for g in ("", *PINNED_EXTRAS) for r in groups[g]} - {"nst-lib"}
    assert needed <= set(pins), f"declared for `make` but not pinned in requirements.txt: {needed - set(pins)}"
    itself = [r for r in groups["test"] if canonicalize_name(r.name) == "nst-lib"]
    assert [r.extras for r in itself] == [{"report", "notebooks"}]  # `make test` needs both


def test_environment_yml_installs_the_pinned_set_and_the_package():
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*- python=([\d.]+)\s*$", text, re.M).group(1)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Requirement(f"python{requires}").specifier.contains(python)
    pip_lines = re.findall(r"^\s*- (-r \S+|-e \S+)\s*$", text, re.M)
    assert pip_lines == ["-r requirements.txt", "-e ."]


def source_files() -> list[str]:
    """The files git tracks (added ones included, deleted ones left out), as a clean clone holds them: an
    untracked file (a scratch module, a notebook of one's own) must not reach the wheel, nor make the
    tests pass where a clone would fail."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "-z"], cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def test_only_the_files_git_tracks_are_built(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    (checkout / "nst_lib").mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(checkout)], check=True)
    (checkout / "nst_lib" / "module.py").write_text("x = 1\n")
    (checkout / "nst_lib" / "gone.py").write_text("y = 2\n")
    subprocess.run([*git, "add", "."], cwd=checkout, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=checkout, check=True)
    (checkout / "nst_lib" / "added.py").write_text("z = 3\n")  # added, not yet committed
    subprocess.run([*git, "add", "nst_lib/added.py"], cwd=checkout, check=True)
    (checkout / "nst_lib" / "gone.py").unlink()
    (checkout / "nst_lib" / "scratch.py").write_text("my experiment\n")  # never added
    (checkout / "notes.txt").write_text("my notes\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", checkout)
    assert sorted(source_files()) == ["nst_lib/added.py", "nst_lib/module.py"]


def dependency_folders() -> list[str]:
    """The site-packages folders this interpreter imports torch and the rest from."""
    return [path for path in sys.path if Path(path).name in ("site-packages", "dist-packages") and Path(path).is_dir()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, environment for its commands, wheel, work folder): the wheel installed into a fresh environment."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    quiet = {"check": True, "capture_output": True, "text": True}
    offline = ["--no-deps", "--no-index"]
    subprocess.run([*pip, "wheel", *offline, "--no-build-isolation", "-w", base / "dist", source], **quiet)
    (wheel,) = (base / "dist").glob("nst_lib-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], **quiet)
    subprocess.run([*pip, "--python", venv / "bin" / "python", "install", *offline, wheel], **quiet)
    # Only now the dependencies: before, pip would have found this checkout's editable install among them.
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "_dependencies.pth").write_text("\n".join(dependency_folders()) + "\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    environment.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", NST_PROGRESS="off")
    # The .pth file reaches the dependencies' code but not the data files pip puts under the environment's
    # share/ (nbconvert's page templates); an installation of nst_lib[report] has them in its own prefix.
    environment["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    work = base / "elsewhere"
    work.mkdir()
    return venv, environment, wheel, work


def run(installed, *command, timeout=300):
    venv, environment, _, work = installed
    return subprocess.run(command, cwd=work, env=environment, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_carries_the_notebooks_and_the_manifest_and_no_images(installed):
    names = zipfile.ZipFile(installed[2]).namelist()
    modules = sorted(name for name in source_files() if name.startswith("nst_lib/") and name.endswith(".py"))
    assert [name for name in modules if name not in names] == [], "add new subpackages to pyproject.toml's packages"
    notebooks = sorted(path.name for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    packaged = sorted(Path(n).name for n in names if n.startswith("nst_lib/notebooks/") and n.endswith(".ipynb"))
    assert packaged == notebooks
    assert "nst_lib/asset_data/manifest.json" in names
    shipped = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "nst_lib" / "trained").glob("*.*"))
    assert shipped and [name for name in shipped if name not in names] == [], "the shipped generators are missing"
    assert {Path(name).suffix for name in shipped} == {".pt", ".json"}
    weights = [n for n in names if n.lower().endswith((".pt", ".pth"))]
    assert weights and all(n.startswith("nst_lib/trained/") for n in weights)  # only the shipped generators
    assert not [n for n in names if n.lower().endswith((".jpg", ".jpeg", ".png"))]


def test_the_installed_package_reads_everything_from_itself(installed):
    venv = installed[0]
    probe = (
        "import nst_lib, nst_lib.assets as a, nst_lib.report as r; "
        "print(nst_lib.__file__); print(a.local_dir()); print(r.notebook_folder()); print(a.resolve('tubingen'))"
    )
    done = run(installed, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    package, manifest_folder, notebooks, tubingen = map(Path, done.stdout.split("\n")[:4])
    (site,) = (venv / "lib").glob("python3*/site-packages")
    assert package == site / "nst_lib" / "__init__.py"
    assert manifest_folder == site / "nst_lib" / "asset_data" and notebooks == site / "nst_lib" / "notebooks"
    assert tubingen.is_file() and ROOT not in tubingen.parents


def test_the_extras_resolve_against_the_pinned_set(installed):
    venv, _, wheel, _ = installed
    extras = ",".join(PINNED_EXTRAS)
    done = run(installed, sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
               "--dry-run", "--no-index", f"{wheel}[{extras}]")
    assert done.returncode == 0, done.stdout + done.stderr
    for group in ("", *PINNED_EXTRAS):
        for requirement in declared()[group]:
            if canonicalize_name(requirement.name) != "nst-lib":
                assert f"Requirement already satisfied: {requirement} " in done.stdout, requirement


def test_nst_assets_lists_the_images_outside_the_checkout(installed):
    done = run(installed, "nst", "assets")
    assert done.returncode == 0, done.stderr
    assert "starry_night" in done.stdout and "tubingen" in done.stdout
    assert f"looked for in {installed[0]}" in done.stdout  # the manifest's folder inside the fresh environment


def test_a_64_px_transfer_from_the_installed_command(installed, artifacts):
    output = installed[3] / "tubingen_starry.png"
    done = run(installed, "nst", "transfer", "--content", "tubingen", "--style", "starry_night", "-o", output.name,
               "--size", "64", "--steps", "30", "--init", "content")
    assert done.returncode == 0, done.stderr
    total = re.search(r"total ([\d.e+-]+) -> ([\d.e+-]+)", done.stdout)
    assert total and float(total.group(2)) < float(total.group(1)), done.stdout
    shutil.copy(output, artifacts / "installed_transfer.png")
    assert load_image(output).shape == (1, 3, 48, 64)


def test_the_installed_command_stylizes_with_a_shipped_generator_without_training(installed, artifacts):
    picture, texture = installed[3] / "tubingen_starry_shipped.png", installed[3] / "starry_texture_shipped.png"
    done = run(installed, "nst", "stylize", "--style", "starry_night", "--content", "tubingen", "-o", picture.name,
               "--size", "128")
    assert done.returncode == 0, done.stderr
    assert "the shipped generator starry_night" in done.stdout and load_image(picture).shape == (1, 3, 96, 128)
    done = run(installed, "nst", "stylize", "--style", "starry_night", "--texture", "-o", texture.name,
               "--size", "96", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert load_image(texture).shape == (1, 3, 96, 96)
    shutil.copy(picture, artifacts / "installed_stylize_shipped.png")


def test_a_one_section_quick_report_runs_the_packaged_notebook_in_the_fresh_python(installed):
    venv, _, _, work = installed
    done = run(installed, "nst", "report", "--profile", "quick", "--only", "01", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    section = work / "report" / "quick" / "01_content_reconstruction"
    assert (work / "report" / "quick" / "index.html").is_file()
    executed = json.loads((section / "01_content_reconstruction.ipynb").read_text())
    (site,) = (venv / "lib").glob("python3*/site-packages")
    assert Path(executed["metadata"]["papermill"]["input_path"]).parent == site / "nst_lib" / "notebooks"
    kernel = json.loads((section / "figures" / "setup.json").read_text())
    assert Path(kernel["python"]) == venv / "bin" / "python"
    assert Path(kernel["library"]) == site / "nst_lib"
    # Each grid with its rendition for narrow screens (``<name>.narrow.png``), which the page shows on a phone.
    assert sorted(p.name for p in (section / "figures").glob("*.png")) == [
        "content_reconstruction.narrow.png", "content_reconstruction.png",
        "content_two_seeds.narrow.png", "content_two_seeds.png"]
