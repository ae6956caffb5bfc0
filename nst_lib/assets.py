"""Named example images: where each comes from and how to get it.

``assets/manifest.json`` lists every named image (name, content or style,
title, author, licence, canonical URL pinned to a commit, sha256). A name
resolves to a file, first match wins:

1. ``assets/<file>`` in this repository (a copy kept from an earlier download);
2. ``$NST_ASSET_MIRROR/<file>``, a local mirror folder;
3. a download from the canonical URL, checksum verified, written atomically
   and kept in ``assets/`` (gitignored) for next time.

Every file is checked against its sha256 before use. Any file path works
wherever a name does.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .files import atomic_write

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets"
MANIFEST = ASSET_DIR / "manifest.json"
MIRROR_VARIABLE = "NST_ASSET_MIRROR"
DOWNLOAD_TIMEOUT_S = 30


class AssetError(ValueError):
    """A named image cannot be found or fetched; the message says what to do."""


@dataclass(frozen=True)
class Asset:
    name: str
    file: str
    role: str  # "content" or "style"
    title: str
    author: str
    license: str
    url: str
    sha256: str
    bytes: int


@lru_cache(maxsize=1)
def manifest() -> dict[str, Asset]:
    """All named images, by name, in manifest order."""
    try:
        entries = json.loads(MANIFEST.read_text())["images"]
    except FileNotFoundError:
        raise AssetError(f"The image manifest {MANIFEST} is missing: restore assets/manifest.json from git.") from None
    return {entry["name"]: Asset(**entry) for entry in entries}


def names(role: str | None = None) -> list[str]:
    """Names of the images, optionally only those of one role ("content" or "style")."""
    return [name for name, asset in manifest().items() if role is None or asset.role == role]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The local file for an image name from the manifest, or the given path itself."""
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
    local = ASSET_DIR / asset.file
    if local.is_file():
        return _verified(local, asset, fix="delete it so that it is fetched again")
    mirror = os.environ.get(MIRROR_VARIABLE)
    if mirror and (Path(mirror) / asset.file).is_file():
        return _verified(Path(mirror) / asset.file, asset, fix=f"repair the mirror or unset {MIRROR_VARIABLE}")
    return _download(asset, local)


def _verified(path: Path, asset: Asset, fix: str) -> Path:
    if sha256(path) != asset.sha256:
        raise AssetError(f"{path} does not match the checksum of {asset.name!r} in the manifest: {fix}.")
    return path


def _download(asset: Asset, target: Path) -> Path:
    try:
        with urllib.request.urlopen(asset.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except Exception as error:  # URLError, timeouts, SSL errors
        raise AssetError(
            f"Image {asset.name!r} is not in {ASSET_DIR} and could not be downloaded from {asset.url} ({error}): "
            f"download it there by hand, or set {MIRROR_VARIABLE} to a folder that holds {asset.file}."
        ) from None
    if hashlib.sha256(data).hexdigest() != asset.sha256:
        raise AssetError(f"The download of {asset.name!r} from {asset.url} does not match its checksum; nothing was kept.")
    with atomic_write(target) as handle:
        handle.write(data)
    return target
