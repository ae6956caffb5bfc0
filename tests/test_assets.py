import hashlib
import io
import urllib.error

import pytest

from nst_lib import assets, profiles
from nst_lib.assets import AssetError, resolve


@pytest.fixture
def fake_asset(tmp_path, monkeypatch):
    """A one-image manifest whose image lives nowhere yet; returns (asset, its bytes).

    The manifest's folder is ``tmp_path/assets``, the cache ``tmp_path/cache`` (not yet made), no mirror.
    """
    data = b"pretend these are the bytes of a picture"
    asset = assets.Asset(
        name="demo", file="demo.jpg", role="style", title="Demo", author="nobody", license="CC0",
        url="https://example.invalid/demo.jpg", sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
    )
    local = tmp_path / "assets"
    local.mkdir()
    monkeypatch.setattr(assets, "local_dir", lambda: local)
    monkeypatch.setattr(assets, "manifest", lambda: {"demo": asset})
    monkeypatch.setenv(assets.CACHE_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.delenv(assets.MIRROR_VARIABLE, raising=False)
    return asset, data


def serve(data):
    """A stand-in for urlopen that answers every URL with ``data`` and counts the calls."""
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        return io.BytesIO(data)

    urlopen.calls = calls
    return urlopen


def offline(url, timeout):
    raise urllib.error.URLError("Name or service not known")


def test_the_manifest_names_every_classic_image_with_its_source():
    entries = assets.manifest()
    for name in ("starry_night", "frida_kahlo", "the_scream", "shipwreck", "tubingen", "golden_gate", "hoovertowernight"):
        assert name in entries
    for asset in entries.values():
        assert asset.role in ("content", "style", "photo-set")
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


def test_a_download_is_verified_and_kept_in_the_cache(fake_asset, tmp_path, monkeypatch):
    asset, data = fake_asset
    urlopen = serve(data)
    monkeypatch.setattr(assets.urllib.request, "urlopen", urlopen)
    path = resolve("demo")
    assert urlopen.calls == [asset.url]
    assert path == tmp_path / "cache" / asset.file and path.read_bytes() == data
    assert list((tmp_path / "cache").iterdir()) == [path]  # no temporary file left beside it
    monkeypatch.setattr(assets.urllib.request, "urlopen", None)  # the kept copy needs no network
    assert resolve("demo") == path


def test_names_resolve_local_folder_then_mirror_then_cache(fake_asset, tmp_path, monkeypatch):
    asset, data = fake_asset
    monkeypatch.setattr(assets.urllib.request, "urlopen", offline)
    places = {"local": tmp_path / "assets", "mirror": tmp_path / "mirror", "cache": tmp_path / "cache"}
    for folder in places.values():
        folder.mkdir(exist_ok=True)
        (folder / asset.file).write_bytes(data)
    monkeypatch.setenv(assets.MIRROR_VARIABLE, str(places["mirror"]))
    for name in ("local", "mirror", "cache"):
        assert resolve("demo") == places[name] / asset.file, name
        (places[name] / asset.file).unlink()
    with pytest.raises(AssetError, match="could not be downloaded"):  # the last resort
        resolve("demo")


def test_the_cache_folder_follows_the_platform_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(assets.CACHE_VARIABLE, raising=False)
    monkeypatch.setattr(assets.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert assets.cache_dir() == tmp_path / "xdg" / "nst_lib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert assets.cache_dir() == tmp_path / "home" / ".cache" / "nst_lib"
    monkeypatch.setenv(assets.CACHE_VARIABLE, str(tmp_path / "mine"))
    assert assets.cache_dir() == tmp_path / "mine"


def test_a_corrupt_download_keeps_nothing(fake_asset, tmp_path, monkeypatch):
    monkeypatch.setattr(assets.urllib.request, "urlopen", serve(b"an error page"))
    with pytest.raises(AssetError, match="does not match its checksum; nothing was kept"):
        resolve("demo")
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_a_cache_that_cannot_be_written_says_which_variable_moves_it(fake_asset, tmp_path, monkeypatch):
    asset, data = fake_asset
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(assets.CACHE_VARIABLE, str(blocker / "cache"))
    monkeypatch.setattr(assets.urllib.request, "urlopen", serve(data))
    with pytest.raises(AssetError, match=f"cannot be kept in {blocker / 'cache'} .*set NST_CACHE_DIR to a folder"):
        resolve("demo")


def test_offline_without_a_mirror_says_what_to_do_in_one_sentence(fake_asset, tmp_path, monkeypatch):
    monkeypatch.setattr(assets.urllib.request, "urlopen", offline)
    with pytest.raises(AssetError) as error:
        resolve("demo")
    message = str(error.value)
    assert "could not be downloaded from https://example.invalid/demo.jpg (<urlopen error Name or service" in message
    assert f"kept in {tmp_path / 'cache'}), or set NST_ASSET_MIRROR to a folder that holds demo.jpg." in message
    assert "\n" not in message and message.count(". ") == 0


def test_the_listing_says_where_images_are_looked_for(fake_asset, tmp_path, monkeypatch):
    asset, data = fake_asset
    assert assets.describe_sources().startswith("0 of 1 named images are on this machine")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / asset.file).write_bytes(data)
    text = assets.describe_sources()
    assert text.startswith("1 of 1 named images") and f"the cache {tmp_path / 'cache'}" in text
    assert "NST_ASSET_MIRROR (not set)" in text


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


def test_the_kodak_photographs_split_into_training_and_held_out_once_and_for_all():
    kodak, train, held_out = (assets.image_set(name) for name in ("kodak", "kodak-train", "kodak-held-out"))
    assert len(kodak) == 24 and len(held_out) >= 4
    assert sorted(train + held_out) == sorted(kodak) and not set(train) & set(held_out)
    every_held_out = assets.image_set(profiles.GENERATOR_HELD_OUT_SET)
    assert set(every_held_out) == set(held_out) | set(assets.names("content"))
    assert assets.image_set(profiles.GENERATOR_TRAINING_SET) == train
    entries = assets.manifest()
    for name in kodak:
        assert entries[name].role == "photo-set" and entries[name].file == f"kodak/{name}.png"
    with pytest.raises(AssetError, match="'kodac' is not a named set of images; the sets are: kodak, "):
        assets.image_set("kodac")


def test_a_url_is_named_whole_and_not_fetched():
    with pytest.raises(AssetError, match="^https://example.com/a/photo.png is a URL: download the image"):
        resolve("https://example.com/a/photo.png")


def test_an_installation_without_the_manifest_says_to_reinstall(monkeypatch):
    def missing(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(assets.resources, "files", missing)
    assets.manifest.cache_clear()
    try:
        with pytest.raises(AssetError, match=r"no image manifest: reinstall it \(in a checkout: make setup\)\.$"):
            assets.names()
    finally:
        monkeypatch.undo()
        assets.manifest.cache_clear()
    assert "tubingen" in assets.names()


def test_offline_with_a_cache_that_is_a_file_says_so(fake_asset, tmp_path, monkeypatch):
    monkeypatch.setattr(assets.urllib.request, "urlopen", offline)
    cache = tmp_path / "cache.txt"
    cache.write_text("not a folder")
    for setting in (cache, cache / "nst"):
        monkeypatch.setenv(assets.CACHE_VARIABLE, str(setting))
        with pytest.raises(AssetError) as error:
            resolve("demo")
        message = str(error.value)
        assert f"connect to the internet once (with NST_CACHE_DIR set to a folder: {cache} is a file), or set " \
               "NST_ASSET_MIRROR to a folder that holds demo.jpg." in message
        assert "kept in" not in message
    assert cache.read_text() == "not a folder"
