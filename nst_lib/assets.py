"""Named example images: where each comes from and how to get it.

The manifest (``assets/manifest.json`` in the repository, installed as
``nst_lib.asset_data``) lists every named image: name, content or style,
title, author, licence, canonical URL pinned to a commit, sha256. A name
resolves to a file, first match wins:

1. the manifest's own folder: in a checkout that is ``assets/``, where images
   may be kept by hand (gitignored);
2. ``$NST_ASSET_MIRROR/<file>``, a local mirror folder;
3. the per-user cache, ``$NST_CACHE_DIR`` or else the platform's cache folder
   (``$XDG_CACHE_HOME/nst_lib``, by default ``~/.cache/nst_lib``);
4. a download from the canonical URL, checksum verified and written
   atomically into that cache for next time.

Every file is checked against its sha256 before use. Any file path works
wherever a name does.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .files import atomic_write

MIRROR_VARIABLE = "NST_ASSET_MIRROR"
CACHE_VARIABLE = "NST_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 30


def local_dir() -> Path:
    """The folder that holds the manifest: ``assets/`` in a checkout, ``nst_lib/asset_data`` when installed."""
    try:
        return Path(str(resources.files("nst_lib.asset_data")))
    except ModuleNotFoundError:  # an editable install made before the manifest became package data
        raise AssetError(
            "This installation of nst_lib has no image manifest: reinstall it (in a checkout: make setup)."
        ) from None


def cache_dir() -> Path:
    """Where downloaded images are kept: ``$NST_CACHE_DIR``, else the platform's per-user cache folder."""
    chosen = os.environ.get(CACHE_VARIABLE)
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nst_lib"


class AssetError(ValueError):
    """A named image cannot be found or fetched; the message says what to do."""


@dataclass(frozen=True)
class Asset:
    name: str
    file: str
    role: str  # "content", "style" or "photo-set" (test photographs, e.g. for benchmarks)
    title: str
    author: str
    license: str
    url: str
    sha256: str
    bytes: int


def _manifest_file() -> dict:
    """The manifest's JSON: its "images" and its named "sets" of them (read afresh: ``manifest`` keeps its images)."""
    path = local_dir() / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AssetError(
            f"The image manifest {path} is missing: reinstall nst_lib (in a checkout, restore assets/manifest.json "
            "from git)."
        ) from None


@lru_cache(maxsize=1)
def manifest() -> dict[str, Asset]:
    """All named images, by name, in manifest order."""
    return {entry["name"]: Asset(**entry) for entry in _manifest_file()["images"]}


def names(role: str | None = None) -> list[str]:
    """Names of the images, optionally only those of one role ("content" or "style")."""
    return [name for name, asset in manifest().items() if role is None or asset.role == role]


def image_sets() -> dict[str, tuple[str, ...]]:
    """Named sets of named images (the manifest's "sets"), by name, e.g. a generator's training photographs."""
    return {entry["name"]: tuple(entry["images"]) for entry in _manifest_file().get("sets", [])}


def image_set(name: str) -> list[str]:
    """The names of the images in set ``name``, in manifest order; an AssetError names the sets there are."""
    sets = image_sets()
    if name not in sets:
        raise AssetError(f"{name!r} is not a named set of images; the sets are: {', '.join(sets)}.")
    return list(sets[name])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The local file for an image name from the manifest (downloaded if need be), or the given path itself."""
    key = str(name_or_path)
    if "://" in key:
        raise AssetError(f"{key} is a URL: download the image and give the path of the file, or a named image.")
    assets = manifest()
    if key not in assets:
        path = Path(name_or_path).expanduser()
        if path.exists() or os.sep in key or "." in Path(key).name:
            return path
        raise AssetError(
            f"{key!r} is neither an image file nor a named image; the names are: {', '.join(assets)}."
        )
    asset = assets[key]
    found = locate(asset)
    if found is not None:
        path, fix = found
        return _verified(path, asset, fix)
    return _download(asset, cache_dir() / asset.file)


def locate(asset: Asset) -> tuple[Path, str] | None:
    """The first copy of ``asset`` on this machine and how to repair it if it is corrupt; None if there is none."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    places = [(local_dir(), "delete it so that it is fetched again")]
    if mirror:
        places.append((Path(mirror).expanduser(), f"repair the mirror or unset {MIRROR_VARIABLE}"))
    places.append((cache_dir(), "delete it so that it is downloaded again"))
    for folder, fix in places:
        if (folder / asset.file).is_file():
            return folder / asset.file, fix
    return None


def describe_sources() -> str:
    """Where named images come from on this machine, in the order they are looked for."""
    present = sum(locate(asset) is not None for asset in manifest().values())
    mirror = os.environ.get(MIRROR_VARIABLE)
    return (
        f"{present} of {len(manifest())} named images are on this machine; they are looked for in {local_dir()}, "
        f"then {MIRROR_VARIABLE} ({mirror or 'not set'}), then the cache {cache_dir()} ({CACHE_VARIABLE} moves it), "
        "and a missing one is downloaded into the cache on first use."
    )


def _verified(path: Path, asset: Asset, fix: str) -> Path:
    if sha256(path) != asset.sha256:
        raise AssetError(f"{path} does not match the checksum of {asset.name!r} in the manifest: {fix}.")
    return path


def _kept(folder: Path) -> str:
    """Where a download would be kept, in words: ``folder``, or why it cannot be (a file in its place)."""
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"with {CACHE_VARIABLE} set to a folder: {existing} is a file"
    return f"it is then kept in {folder}"


def _download(asset: Asset, target: Path) -> Path:
    try:
        with urllib.request.urlopen(asset.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except Exception as error:  # URLError, timeouts, SSL errors
        raise AssetError(
            f"Image {asset.name!r} is not on this machine and could not be downloaded from {asset.url} ({error}): "
            f"connect to the internet once ({_kept(target.parent)}), or set {MIRROR_VARIABLE} to a "
            f"folder that holds {asset.file}."
        ) from None
    if hashlib.sha256(data).hexdigest() != asset.sha256:
        raise AssetError(
            f"The download of {asset.name!r} from {asset.url} does not match its checksum; nothing was kept."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as handle:
            handle.write(data)
    except OSError as error:
        raise AssetError(
            f"The download of {asset.name!r} cannot be kept in {target.parent} ({error.strerror or error}): "
            f"set {CACHE_VARIABLE} to a folder you can write."
        ) from None
    return target
