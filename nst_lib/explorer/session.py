"""The explorer's runs without any widget: start, stop, history, save, restore, compare.

A ``Session`` runs ``optimize.transfer`` in a background thread, so that
whoever drives it (the widgets of ``view``, a test, a notebook run by
papermill) stays responsive, and Stop ends the run before its next
evaluation. What happens is told to a ``Listener``: previews every few
evaluations, the run that ended, and one sentence for each message. Every
error a user can cause (an image that cannot be read, no style layer, a size
too small for the layers, a folder that cannot be written) ends as one such
sentence, never as a traceback.

So that the first picture comes fast, ``prepare`` does in the background what
every Run needs before its first evaluation: the VGG-19 is loaded, the
pictures are read and scaled, and one evaluation at the run's size is made
and thrown away (the convolutions' first call at a new size costs several
evaluations' time). A Run started meanwhile waits for it to finish.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

from .. import assets, profiles
from ..files import USER_ERRORS, atomic_write
from ..images import decode_image, open_image, pil_to_tensor, resize, save_image
from ..optimize import Result, transfer
from ..vgg import VGG19, pick_device
from .settings import UPLOADED, Settings

PREVIEW_EVERY = 3
STOPPED_EARLY = "Stopped before the first evaluation ended; there is no picture to keep."
PREPARING = "Getting the first Run ready: the VGG-19, the pictures and one trial evaluation…"
READY = "Ready: press Run."


@dataclass
class Run:
    """One run that ended: the settings it started with and what ``transfer`` returned."""

    number: int
    settings: Settings
    result: Result

    @property
    def image(self) -> torch.Tensor:
        return self.result.image

    def record(self) -> dict:
        """The settings, the library's own record of the call, and how the run went (JSON-ready)."""
        return {
            "run": self.number,
            "settings": self.settings.to_dict(),
            "loss": self.result.params["loss"],
            "transfer": self.result.params,
            "evaluations": self.result.evaluations,
            "seconds": round(self.result.seconds, 2),
            "stopped": self.result.stopped,
            "first_losses": {name: values[0] for name, values in self.result.history.items()},
            "final_losses": self.result.final_losses,
            "events": self.result.events,
        }

    def summary(self) -> list[str]:
        """The settings' lines, how the run ended and its final loss: a caption."""
        if self.result.stopped:
            ending = f"stopped at {self.result.evaluations} of {self.settings.steps}"
        else:
            ending = f"{self.result.evaluations} evaluations"
        return [*self.settings.summary(), f"{ending} · {self.result.seconds:.1f} s",
                f"total loss {self.result.final_losses['total']:.3g}"]

    def report(self) -> str:
        """What happened, in a sentence or two: how the run ended, the loss's fall, the last event."""
        result = self.result
        change = f"total loss {result.history['total'][0]:.3g} → {result.final_losses['total']:.3g}"
        if result.stopped:
            message = (f"Stopped run {self.number} after {result.evaluations} of {self.settings.steps} evaluations "
                       f"({result.seconds:.1f} s); {change}.")
        else:
            message = f"Run {self.number} done: {result.evaluations} evaluations in {result.seconds:.1f} s; {change}."
        return " ".join([message, *result.events[-1:]])

    def _repr_html_(self) -> str:
        """A table of the settings and of how the run went (what a notebook shows for a Run)."""
        height, width = self.image.shape[-2:]
        rows = [(name.replace("_", " "), ", ".join(map(str, value)) if isinstance(value, list) else value)
                for name, value in self.settings.to_dict().items()]
        rows += [("picture", f"{width}x{height} px"), ("evaluations made", self.result.evaluations),
                 ("seconds", f"{self.result.seconds:.1f}")]
        rows += [(f"final {name} loss", f"{value:.3g}") for name, value in self.result.final_losses.items()]
        cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table><tr><th>run {self.number}</th><th></th></tr>{cells}</table>"

    def file_stem(self) -> str:
        """A file name (without suffix) that says what the picture is and does not repeat across sessions."""
        names = "_".join(_safe(name) for name in (self.settings.content, self.settings.styles[0]))
        return f"{time.strftime('%Y%m%d-%H%M%S')}_run{self.number}_{names}"


@dataclass
class Preview:
    """The picture as a run goes: after ``evaluation`` of ``steps``, ``seconds`` after Run was pressed."""

    evaluation: int
    steps: int
    image: torch.Tensor
    losses: dict[str, float]
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Comparison:
    """Two runs side by side: (what, first's value, second's) for each setting in which they differ,
    then their evaluations and final losses."""

    first: Run
    second: Run
    rows: list[tuple[str, object, object]]
    same_settings: bool


class Listener:
    """What a session tells whoever shows it; these do nothing (a view overrides them)."""

    def said(self, text: str, error: bool) -> None: ...

    def started(self, settings: Settings) -> None: ...

    def previewed(self, preview: Preview) -> None: ...

    def finished(self, run: Run) -> None: ...

    def ended(self) -> None:
        """The run's thread is done, whether a run ended, failed or never began."""


class Pictures:
    """The images that settings name: named images (``assets``) and uploads, each also kept scaled."""

    def __init__(self):
        self._uploads: dict[str, Image.Image] = {}
        self._scaled: dict[tuple[str, int], torch.Tensor] = {}

    def add_upload(self, file_name: str, data: bytes) -> str:
        """Keep an uploaded image under the label ``UPLOADED + file_name``, which Settings can name;
        a ValueError says why a file is not an image."""
        picture = decode_image(data, file_name)
        label = UPLOADED + file_name
        self._uploads[label] = picture
        self._scaled = {key: value for key, value in self._scaled.items() if key[0] != label}
        return label

    def available(self, choice: str) -> bool:
        return choice in self._uploads or choice in assets.names()

    def __getitem__(self, choice: str) -> Image.Image:
        """The image a Settings names, at its own size."""
        return self._uploads[choice] if choice in self._uploads else _named_picture(choice)

    def scaled(self, choice: str, size: int) -> torch.Tensor:
        """The image a Settings names, its longest side ``size`` px, as a tensor (kept for the next run)."""
        key = (choice, size)
        if key not in self._scaled:
            self._scaled[key] = pil_to_tensor(resize(self[choice], size))
        return self._scaled[key]


class Preparation:
    """The VGG-19, loaded in the background, and warm-ups at a run's size; a Run waits for both."""

    def __init__(self, model: VGG19 | None, weights: str, device: str, precision: str = profiles.PRECISION):
        self.model, self.error = model, None
        self.seconds: float | None = None  # how long the last warm-up took, loading included
        if model is None:
            _parallel_loop_here()
        self._thread = None if model is not None else _start(self._load, weights, device, precision)

    def warm_up(self, settings: Settings, pictures: Pictures, done=None) -> None:
        """Read and scale the pictures, and make one evaluation at the run's size and throw it away;
        then call ``done()``, if given."""
        self._thread = _start(self._warm_up, settings, pictures, self._thread, time.perf_counter(), done)

    def wait(self) -> VGG19:
        """The model, once loading and warming up are done; the loading's error if it failed."""
        if self._thread is not None:
            self._thread.join()
        if self.model is None:
            raise self.error or RuntimeError("The VGG-19 did not load.")
        return self.model

    def _load(self, weights: str, device: str, precision: str) -> None:
        try:
            self.model = _model(weights, device, precision)
        except Exception as error:  # said when a run needs the model
            self.error = error

    def _warm_up(self, settings: Settings, pictures: Pictures, before: threading.Thread | None, started,
                 done) -> None:
        if before is not None:
            before.join()
        try:
            spec, model = settings.loss_spec(), self.model
            content = pictures.scaled(settings.content, settings.size)
            styles = [pictures.scaled(name, settings.size) for name in settings.styles]
            if model is not None:
                image = content.to(model.device).clone().requires_grad_(True)
                terms = spec.objective(model, content, styles)(image)
                sum(spec.weights()[name] * value for name, value in terms.items()).backward()
        except Exception:  # nothing is lost: the Run itself says what is wrong
            pass
        else:
            self.seconds = time.perf_counter() - started
        if done is not None:
            done()


class Session:
    """Runs of ``transfer`` in a background thread, the runs that ended, and what to do with them.

    ``model``: the VGG19 to use (default: ``weights`` on ``device``, loaded in
    the background, once per process). ``preview_every``: evaluations between
    previews. ``listener``: told of messages, previews and runs.
    """

    def __init__(self, model: VGG19 | None = None, *, weights: str = profiles.WEIGHTS,
                 device: str = profiles.DEVICE, precision: str = profiles.PRECISION, preview_every: int = PREVIEW_EVERY,
                 listener: Listener | None = None):
        self.preview_every = preview_every
        self.listener = listener or Listener()
        self.runs: list[Run] = []
        self.history: dict[str, list[float]] = {}  # the current run's losses, per evaluation
        self.message, self.message_is_error = "", False
        self.error: BaseException | None = None  # the last unexpected error, for whoever debugs it
        self.pictures = Pictures()
        self.preparation = Preparation(model, weights, device, precision)
        self._stop = threading.Event()
        self._busy = threading.Event()  # set from Run until the run's thread has said it ended
        self._worker: threading.Thread | None = None

    # ----------------------------------------------------------------------------------
    # Runs

    def prepare(self, settings: Settings) -> None:
        """In the background, get everything a Run with ``settings`` needs before its first evaluation;
        the message says when that is done (unless something else has been said meanwhile)."""
        self.say(PREPARING)

        def done():
            if self.message == PREPARING:
                self.say(READY)

        self.preparation.warm_up(settings, self.pictures, done)

    def run(self, settings: Settings) -> bool:
        """Start a run with ``settings``; False, with a message, when it cannot start."""
        if self.running:
            self.say("A run is already going: press Stop first.", error=True)
            return False
        try:
            settings.loss_spec()
            content = self.pictures.scaled(settings.content, settings.size)
            styles = [self.pictures.scaled(name, settings.size) for name in settings.styles]
        except USER_ERRORS as error:
            self.say(str(error), error=True)
            return False
        self._stop.clear()
        self._busy.set()
        self.history = {}
        self.listener.started(settings)
        height, width = content.shape[-2:]
        self.say(f"Running {settings.steps} evaluations at {width}x{height} px…")
        self._worker = _start(self._work, settings, content, styles, time.perf_counter(), daemon=True)
        return True

    def instant(self, settings: Settings) -> torch.Tensor | None:
        """``shipped_picture`` of ``settings``, its message said; None, with a message, when there is none."""
        try:
            image, said = shipped_picture(settings, self.pictures)
        except USER_ERRORS as error:
            return self.say(str(error), error=True)
        self.say(said)
        return image

    def run_now(self, settings: Settings) -> Run:
        """Run ``settings`` to the end and return the Run; a RuntimeError with the message if none ended."""
        if not self.run(settings) or (run := self.wait()) is None or run.settings is not settings:
            raise RuntimeError(self.message)
        return run

    def stop(self) -> None:
        """Ask the running optimization to end before its next evaluation."""
        if self.running:
            self._stop.set()
            self.say("Stopping…")

    def wait(self, timeout: float | None = None) -> Run | None:
        """Block until the current run has ended; return the latest run (None if none ended)."""
        if self._worker is not None:
            self._worker.join(timeout)
            if self._worker.is_alive():
                raise TimeoutError(f"The run is still going after {timeout} s.")
        return self.runs[-1] if self.runs else None

    @property
    def running(self) -> bool:
        return self._busy.is_set()

    @property
    def model(self) -> VGG19:
        """The VGG-19, once loaded and warmed up (this waits for it)."""
        return self.preparation.wait()

    # ----------------------------------------------------------------------------------
    # The runs that ended

    def save(self, folder: str | Path, number: int | None = None) -> tuple[Path, Path] | None:
        """Write run ``number`` (default: the latest) as ``<stem>.png`` and ``<stem>.json`` into ``folder``;
        both paths, or None with a message."""
        if not self.runs:
            self.say("Nothing to save yet: press Run first.", error=True)
            return None
        run = self.find(number)
        folder = Path(folder).expanduser()
        stem = run.file_stem()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            picture = save_image(run.image, folder / f"{stem}.png")
            record = folder / f"{stem}.json"
            with atomic_write(record, "w") as handle:
                json.dump(run.record(), handle, indent=1)
        except OSError as error:
            self.say(f"Cannot save into {folder} ({error.strerror or error}): choose another folder.", error=True)
            return None
        self.say(f"Saved run {run.number} as {picture} with its settings in {record.name}.")
        return picture, record

    def restore(self, number: int | None = None) -> Settings | None:
        """Run ``number``'s settings (default: the latest's), or None with a message when they cannot
        be run again (no runs yet, or an uploaded image that is gone)."""
        if not self.runs:
            self.say("No run to restore yet: press Run first.", error=True)
            return None
        chosen = self.find(number)
        names = (chosen.settings.content, *chosen.settings.styles)
        missing = [name for name in names if not self.pictures.available(name)]
        if missing:
            self.say(f"Cannot restore run {chosen.number}: {missing[0]} is no longer available.", error=True)
            return None
        return chosen.settings

    def compare(self, first: int, second: int) -> Comparison:
        """Runs ``first`` and ``second`` side by side (a ValueError names the runs there are)."""
        a, b = self.find(first), self.find(second)
        rows = [(name.replace("_", " "), x, y) for name, x, y in a.settings.differences(b.settings)]
        rows.append(("evaluations", a.result.evaluations, b.result.evaluations))
        rows += [(f"final {name} loss", f"{a.result.final_losses[name]:.3g}", f"{b.result.final_losses[name]:.3g}")
                 for name in a.result.final_losses if name in b.result.final_losses]
        return Comparison(a, b, rows, same_settings=a.settings == b.settings)

    def find(self, number: int | None) -> Run:
        """The run with this number (None: the latest); a ValueError names the numbers there are."""
        for run in reversed(self.runs):
            if number is None or run.number == number:
                return run
        raise ValueError(f"There is no run {number}: the runs are {', '.join(str(r.number) for r in self.runs)}.")

    # ----------------------------------------------------------------------------------
    # Messages

    def say(self, text: str, error: bool = False) -> None:
        self.message, self.message_is_error = text, error
        self.listener.said(text, error)

    # ----------------------------------------------------------------------------------
    # In the background

    def _work(self, settings: Settings, content, styles, clicked: float) -> None:
        try:
            model = self.model
            result = transfer(
                content, styles, model=model, loss=settings.loss_spec(), **settings.run_options(),
                callback=lambda evaluation, image, losses: self._on_evaluation(settings, evaluation, image, losses,
                                                                               clicked),
                callback_every=1, should_stop=self._stop, progress=False,
            )
        except USER_ERRORS as error:
            self.say(str(error), error=True)
        except Exception as error:  # no traceback for the person, whatever happened
            self.error = error
            if self._stop.is_set():  # stopped before the first evaluation ended: no image exists yet
                self.say(STOPPED_EARLY)
            else:
                first_line = (str(error).splitlines() or [""])[0]
                self.say(f"The run failed unexpectedly ({type(error).__name__}: {first_line}).", error=True)
        else:
            self._finish(Run(len(self.runs) + 1, settings, result))
        finally:
            self._busy.clear()
            self.listener.ended()

    def _on_evaluation(self, settings: Settings, evaluation: int, image, losses, clicked: float) -> None:
        for name, value in losses.items():
            self.history.setdefault(name, []).append(value)
        if evaluation % self.preview_every == 0 or evaluation == settings.steps:
            seconds = time.perf_counter() - clicked
            self.listener.previewed(Preview(evaluation, settings.steps, image, dict(losses), seconds, self.history))

    def _finish(self, run: Run) -> None:
        self.runs.append(run)
        self.listener.finished(run)
        self.say(run.report())


def shipped_picture(settings: Settings, pictures: Pictures) -> tuple[torch.Tensor, str]:
    """The content of ``settings`` at its size, stylized in one forward pass by the generator shipped for its
    first style (``pretrained``; a ``PretrainedError`` when none is), and a line saying which and how fast."""
    from .. import pretrained

    name = pretrained.find(settings.styles[0])
    content = pictures.scaled(settings.content, settings.size)
    started = time.perf_counter()
    image = pretrained.stylize_with(name, content)
    steps = pretrained.description(name)["steps"]
    return image, (f"Instant: the shipped generator {name} ({steps} Adam steps of training), one forward pass in "
                   f"{time.perf_counter() - started:.2f} s; Run optimizes the picture itself.")


def _start(target, *args, daemon: bool = False) -> threading.Thread:
    """``target(*args)`` in a new thread. Preparation threads are not daemons: Python waits for them at exit
    instead of ending them inside torch (which aborts the process); a run's thread is one, as Stop ends it."""
    thread = threading.Thread(target=target, args=args, daemon=daemon)
    thread.start()
    return thread


def _parallel_loop_here() -> None:
    """Run one of torch's parallel loops in the calling thread, before any other thread does.

    With torch's OpenMP runtime, a process whose first parallel loop ran in a thread other than the main
    one spent several times the processor time on every later evaluation (docs/explorer.md,
    "A pitfall avoided"). Loading the VGG-19 in the background would be that first loop.
    """
    torch.ones(1 << 20).mul_(2)


@lru_cache(maxsize=2)
def _model(weights: str, device: str, precision: str) -> VGG19:
    return VGG19(weights, profiles.POOLING, precision=precision).to(pick_device(device))


@lru_cache(maxsize=16)
def _named_picture(name: str) -> Image.Image:
    return open_image(assets.resolve(name))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name.removeprefix(UPLOADED)).stem).strip("-") or "image"
