import hashlib
import io
import urllib.error

import pytest

from nst_lib import assets
from nst_lib.assets import AssetError, resolve


@pytest.fixture
def fake_asset(tmp_path, monkeypatch):
    """A one-image manifest whose image lives nowhere yet; returns (asset, its bytes)."""
    data = b"pretend these are the bytes of a picture"
    asset = assets.Asset(
        name="demo", file="demo.jpg", role="style", title="Demo", author="nobody", license="CC0",
        url="https://example.invalid/demo.jpg", sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
    )
    asset_dir = tmp_path / "assets"
    asset_dir.mkdir()
    monkeypatch.setattr(assets, "ASSET_DIR", asset_dir)
    monkeypatch.setattr(assets, "manifest", lambda: {"demo": asset})
    monkeypatch.delenv(assets.MIRROR_VARIABLE, raising=False)
    return asset, data


def test_the_manifest_names_every_classic_image_with_its_source():
    entries = assets.manifest()
    for name in ("starry_night", "frida_kahlo", "the_scream", "shipwreck", "tubingen", "golden_gate", "hoovertowernight"):
        assert name in entries
    for asset in entries.values():
        assert asset.role in ("content", "style")
        assert asset.url.startswith("https://") and len(asset.sha256) == 64 and asset.license
    assert set(assets.names("content")) == {"tubingen", "golden_gate", "hoovertowernight"}


def test_a_mirror_folder_is_used_and_checked(fake_asset, tmp_path, monkeypatch):
    asset, data = fake_asset
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / asset.file).write_bytes(data)
    monkeypatch.setenv(assets.MIRROR_VARIABLE, str(mirror))
    assert resolve("demo") == mirror / asset.file
    (mirror / asset.file).write_bytes(b"tampered")
    with pytest.raises(AssetError, match="does not match the checksum"):
        resolve("demo")


def test_a_download_is_verified_and_kept(fake_asset, monkeypatch):
    asset, data = fake_asset
    monkeypatch.setattr(assets.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(data))
    path = resolve("demo")
    assert path == assets.ASSET_DIR / asset.file and path.read_bytes() == data
    monkeypatch.setattr(assets.urllib.request, "urlopen", None)  # the kept copy needs no network
    assert resolve("demo") == path


def test_a_corrupt_download_keeps_nothing(fake_asset, monkeypatch):
    monkeypatch.setattr(assets.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"an error page"))
    with pytest.raises(AssetError, match="does not match its checksum; nothing was kept"):
        resolve("demo")
    assert list(assets.ASSET_DIR.iterdir()) == []


def test_offline_without_a_mirror_says_what_to_do(fake_asset, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(assets.urllib.request, "urlopen", offline)
    with pytest.raises(AssetError, match="set NST_ASSET_MIRROR to a folder that holds demo.jpg"):
        resolve("demo")


def test_paths_work_wherever_names_do(tmp_path):
    picture = tmp_path / "mine.png"
    picture.write_bytes(b"x")
    assert resolve(picture) == picture
    assert resolve(str(tmp_path / "missing.png")) == tmp_path / "missing.png"  # load_image reports it
    with pytest.raises(AssetError, match="neither an image file nor a named image"):
        resolve("starry_nite")


@pytest.mark.skipif(not assets.os.environ.get(assets.MIRROR_VARIABLE), reason="no local image mirror")
def test_the_mirror_holds_every_named_image_intact():
    for name in assets.names():
        assert resolve(name).is_file()


def test_a_url_is_named_whole_and_not_fetched():
    with pytest.raises(AssetError, match="^https://example.com/a/photo.png is a URL: download the image"):
        resolve("https://example.com/a/photo.png")
