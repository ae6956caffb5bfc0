"""Shared fixtures: small synthetic images and one Oxford VGG-19 for the session."""

import contextlib
import http.server
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def pytest_configure(config):
    torch.manual_seed(0)
    # A shell that starts the suite in the background (`make test &`, nohup) ignores SIGINT, and every
    # process started from here would inherit that; a handler, unlike "ignore", is reset in a new program,
    # so the commands that the Ctrl-C tests interrupt see SIGINT as a terminal sends it.
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def oxford():
    from nst_lib.vgg import VGG19

    return VGG19("oxford")


@pytest.fixture(scope="session")
def random_vgg():
    from nst_lib.vgg import VGG19

    return VGG19("random", seed=0, precision="float32")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder for pictures and screenshots that tests save for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def stripes(height=48, width=64, period=8) -> torch.Tensor:
    """A diagonal red/blue stripe image (1, 3, H, W): a cheap, recognizable style."""
    y, x = np.mgrid[0:height, 0:width]
    band = ((x + y) // period) % 2
    image = np.stack([band, 0.2 + 0 * band, 1 - band], axis=0).astype(np.float32)
    return torch.from_numpy(image).unsqueeze(0)


def blobs(height=48, width=64) -> torch.Tensor:
    """A smooth picture with a bright disc on a gradient (1, 3, H, W): a cheap content image."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.05).astype(np.float32)
    image = np.stack([0.3 + 0.5 * x, 0.2 + 0.6 * disc, 0.8 - 0.5 * y], axis=0).astype(np.float32)
    return torch.from_numpy(image.clip(0, 1)).unsqueeze(0)


@contextlib.contextmanager
def web_server():
    """For the block, the address of an HTTP server on this machine: what a Dask dashboard's port, or any
    server that is not a Dask scheduler, answers with."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def image_file(tmp_path):
    """Factory: write a PIL image in a given mode and format and return its path."""

    def write(mode="RGB", size=(40, 30), name="picture.png", **save_options):
        ramp = np.indices(size[::-1]).sum(0)
        array = (ramp * 255 // max(1, ramp.max())).astype(np.uint8)  # a diagonal ramp, black to white
        if mode in ("RGB", "RGBA", "CMYK"):
            channels = [array] * 3 + [np.full_like(array, 255 if mode == "RGBA" else 0)] * (len(mode) - 3)
            image = Image.fromarray(np.stack(channels, axis=-1), mode=mode)
        elif mode == "I;16":
            image = Image.fromarray(array.astype(np.uint16) * 257)
        elif mode == "P":
            image = Image.fromarray(array, mode="L").convert("P")
        else:
            image = Image.fromarray(array, mode="L").convert(mode)
        path = tmp_path / name
        image.save(path, **save_options)
        return path

    return write


def vgg_weights(path, seed: int):
    """A torchvision-layout VGG-19 state_dict of random float16 weights (``features.N.weight`` ...) saved
    at ``path``: a weights file of one's own, 40 MB."""
    from nst_lib.vgg import BLOCKS, CONV_CHANNELS

    generator = torch.Generator().manual_seed(seed)
    state, index = {}, 0
    for block, (_, count) in enumerate(BLOCKS, start=1):
        for conv in range(1, count + 1):
            out_channels, in_channels = CONV_CHANNELS[f"conv{block}_{conv}"]
            std = (2.0 / (9 * in_channels)) ** 0.5
            weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * std
            state[f"features.{index}.weight"] = weight.half()
            state[f"features.{index}.bias"] = torch.zeros(out_channels, dtype=torch.half)
            index += 2  # conv, relu
        index += 1  # pool
    torch.save(state, path)
    return path
