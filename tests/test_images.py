import numpy as np
import pytest
import torch
from PIL import Image

from nst_lib import images
from nst_lib.images import ImageError, load_image, save_image


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "I;16", "I", "F", "CMYK"])
def test_every_image_mode_becomes_rgb_in_unit_range(image_file, mode):
    name = "picture.tif" if mode in ("CMYK", "I", "F") else "picture.png"
    image = load_image(image_file(mode, name=name))
    assert image.shape == (1, 3, 30, 40)
    assert image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert image.min() < 0.05 and image.max() > 0.95  # the ramp's ends survive every conversion


def test_sixteen_bit_images_are_scaled_from_their_own_range(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(path)
    assert load_image(path).mean().item() == pytest.approx(0.5, abs=1 / 255)


def test_transparency_is_composited_onto_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(path)
    assert torch.all(load_image(path) == 1)


def test_exif_rotation_is_applied(tmp_path):
    picture = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    picture.save(path, exif=exif)
    assert load_image(path).shape[-2:] == (40, 20)


def test_size_is_the_longest_side(image_file):
    assert load_image(image_file(size=(400, 300)), size=64).shape[-2:] == (48, 64)


def test_tiny_images_are_upscaled_with_a_warning(image_file):
    with pytest.warns(UserWarning, match="Upscaling a 8x8 image"):
        assert load_image(image_file(size=(8, 8)), size=128).shape[-2:] == (128, 128)


@pytest.mark.parametrize("size, message", [(8, "size=8 is out of range"), (100000, "size=100000 is out of range"), (1.5, "whole number")])
def test_absurd_sizes_are_refused(image_file, size, message):
    with pytest.raises(ImageError, match=message):
        load_image(image_file(), size=size)


def test_a_very_elongated_image_says_why_it_cannot_shrink(image_file):
    with pytest.raises(ImageError, match="shorter side must reach 16 px"):
        load_image(image_file(size=(1000, 10)), size=64)


def test_missing_broken_and_non_image_files_are_one_sentence(tmp_path, image_file):
    with pytest.raises(ImageError, match="Image file not found"):
        load_image(tmp_path / "nowhere.png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageError, match="is not an image PIL can read"):
        load_image(text)
    good = image_file(size=(200, 200), name="big.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(truncated)
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)


def test_save_round_trips_and_creates_no_stray_files(tmp_path):
    image = torch.rand(1, 3, 12, 10)
    path = save_image(image, tmp_path / "out.png")
    assert torch.allclose(load_image(path), image, atol=1 / 255)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_a_failed_save_leaves_the_previous_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(torch.zeros(1, 3, 8, 8), path)
    before = path.read_bytes()

    def broken_save(self, handle, format=None, **options):
        handle.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.ones(1, 3, 8, 8), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_refuses_unknown_suffixes_and_missing_folders(tmp_path):
    with pytest.raises(ImageError, match="use one of the suffixes"):
        save_image(torch.zeros(1, 3, 8, 8), tmp_path / "out.xyz")
    with pytest.raises(ImageError, match="does not exist"):
        save_image(torch.zeros(1, 3, 8, 8), tmp_path / "missing" / "out.png")


def test_luminance_helpers_keep_luminance_and_drop_colour():
    image = torch.rand(1, 3, 8, 8)
    back = images.yiq_to_rgb(images.rgb_to_yiq(image))
    assert torch.allclose(back, image, atol=1e-5)
    gray = images.luminance_only(image)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    matched = images.match_luminance(torch.rand(1, 3, 16, 16) * 0.2, image)
    target = images.rgb_to_yiq(image)[:, 0]
    assert matched[:, 0].mean().item() == pytest.approx(target.mean().item(), abs=0.02)


def test_tensor_to_pil_refuses_wrong_shapes():
    with pytest.raises(ValueError, match="Expected one image, got a batch of 2"):
        images.tensor_to_pil(torch.zeros(2, 3, 4, 4))
    assert np.asarray(images.tensor_to_pil(torch.full((3, 4, 4), 2.0))).max() == 255


def test_image_bytes_decode_like_files_and_bad_bytes_name_the_upload(image_file):
    path = image_file(mode="RGBA", size=(40, 30))
    picture = images.decode_image(path.read_bytes(), "upload.png")
    assert picture.mode == "RGB" and picture.size == (40, 30)
    assert torch.equal(images.pil_to_tensor(picture), load_image(path))
    with pytest.raises(ImageError, match="notes.txt is not an image PIL can read"):
        images.decode_image(b"hello", "notes.txt")
    with pytest.raises(ImageError, match="half.png is damaged or truncated"):
        images.decode_image(image_file(size=(200, 200), name="big.png").read_bytes()[:200], "half.png")


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width`` x ``height`` pixels (opening it reads only the header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(12000, 12000), (9500, 9500)])  # 144 and 90.25 megapixels
def test_images_over_the_stated_pixel_limit_are_refused_as_the_message_says(tmp_path, width, height):
    assert images.MAX_PIXELS == 89478485 and width * height > images.MAX_PIXELS
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_claiming(width, height))
    with pytest.raises(ImageError, match="huge.png has more than 89 megapixels, more than this package opens"):
        load_image(path)


def test_library_tensors_follow_one_documented_rule():
    image = torch.rand(1, 3, 20, 30)
    as_bytes = (image * 255).round().to(torch.uint8)
    assert torch.allclose(images.check_image(as_bytes, "content"), as_bytes.float() / 255)
    assert images.check_image(image[0], "content").shape == (1, 3, 20, 30)
    assert images.check_image(image.double(), "content").dtype == torch.float32
    slightly = image.clone()
    slightly[0, 0, 0, 0] = 1.0004  # rounding is clamped, not refused
    assert float(images.check_image(slightly, "x").max()) <= 1.0
    bad = [
        (image * 255, "content has values from .* give pixels in \\[0, 1\\] \\(divide 0-255 pixels by 255\\)"),
        (image.clamp(0.1, 0.9) - 0.5, "content has values from -0.4 to 0.4: give pixels in \\[0, 1\\]\\."),
        (image.masked_fill(image > 0.9, float("nan")), "content holds NaN or infinite values"),
        (image.masked_fill(image > 0.9, float("inf")), "content holds NaN or infinite values"),
        (torch.rand(1, 4, 20, 30), "content must be an RGB tensor .* got shape \\(1, 4, 20, 30\\)"),
        (torch.rand(1, 1, 20, 30), "content must be an RGB tensor"),
        (torch.rand(20, 30), "content must be an RGB tensor .* got shape \\(20, 30\\)"),
        (torch.rand(2, 3, 20, 30), "content must be one image \\(1, 3, H, W\\), got a batch of 2"),
        (torch.zeros(1, 3, 20, 30, dtype=torch.int64), "content has dtype torch.int64: give uint8"),
        (torch.zeros(1, 3, 0, 30), "content is 30x0 px"),
        (torch.zeros(1, 3, 8, 5000), f"content is 5000x8 px: its sides must be 1 to {images.MAX_SIZE} px"),
    ]
    for tensor, message in bad:
        with pytest.raises(ValueError, match=message):
            images.check_image(tensor, "content")
    with pytest.raises(TypeError, match="content must be an image tensor .* got ndarray"):
        images.check_image(np.zeros((1, 3, 4, 4)), "content")
    assert images.check_image(torch.rand(2, 3, 8, 8), "batch", batch=True).shape == (2, 3, 8, 8)


def test_the_low_pass_keeps_what_a_picture_shows_and_averages_its_speckle_away():
    from nst_lib.images import low_pass, pixel_distance, structure_distance

    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    scene = torch.stack([x, y, 0.5 * (x + y)]).unsqueeze(0)  # smooth: what a layer keeps
    speckle = 0.2 * (torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0)) - 0.5)
    speckled = (scene + speckle).clamp(0, 1)
    assert low_pass(scene, 2).shape == scene.shape and low_pass(scene, 0).equal(scene)
    assert pixel_distance(speckled, scene) > 0.04  # per pixel, the speckle counts
    assert structure_distance(speckled, scene, 2) < 0.01  # after the blur, it does not
    assert structure_distance(scene.flip(-1), scene, 2) > 0.2  # a different scene still does
    tiny = torch.rand(1, 3, 4, 5)
    assert low_pass(tiny, 3).shape == tiny.shape  # a blur wider than the picture: edges repeated
    assert float(low_pass(torch.full((1, 3, 6, 6), 0.3), 2).sub(0.3).abs().max()) < 1e-6  # flat stays flat
