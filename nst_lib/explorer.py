"""Try style-transfer parameters by hand and watch the picture form: ipywidgets over ``transfer``.

``Explorer`` builds the controls and keeps each one as an attribute, so that a
notebook shows them and a test can set values and press buttons from Python.
Run starts ``optimize.transfer`` in a background thread: the notebook stays
responsive, and Stop ends the run before its next evaluation. Every few
evaluations the preview, the loss curve and the progress bar are updated.
Runs that end (finished or stopped) go to a strip, newest first, each
captioned with its parameters and with three buttons: Save writes its picture
and a JSON of its parameters (atomically), Restore puts its settings back on
the controls, Compare (on two runs) shows both side by side at their own
pixels with the settings in which they differ. The preview, too, shows the
picture at its own pixels.

Every error a user can cause (an upload that is not an image, no style layer
selected, a size too small for the layers, a folder that cannot be written)
ends as one sentence in the message line, never as a traceback.
"""

from __future__ import annotations

import html
import io
import json
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from PIL import Image

from . import assets, profiles
from .files import USER_ERRORS, atomic_write
from .images import decode_image, open_image, pil_to_tensor, resize, save_image, tensor_to_pil
from .losses import LossSpec
from .optimize import INITS, OPTIMIZERS, Result, transfer
from .vgg import CONV_LAYERS, VGG19, pick_device

# The first Run: the photograph taking on the painting's style, from the photograph itself at style
# weight 1e4 (the report's setting for that start), 60 evaluations at 256 px: a picture worth keeping in
# seconds on a laptop's CPU (bench/speed.py measures an evaluation), with a new preview every 5 evaluations.
# tests/test_explorer_browser.py measures the first Run.
SIZE = profiles.SIZE
STEPS = profiles.EXPLORER_STEPS
INIT = profiles.EXPLORER_INIT
STYLE_WEIGHT = profiles.STYLE_WEIGHT
PREVIEW_EVERY = 5
# Drawing the loss curve costs about half an evaluation at 128 px; at most once a second keeps it cheap.
LOSS_PLOT_EVERY_S = 1.0
THUMBNAIL = 160
STRIP_WIDTH = 192
NO_SECOND_STYLE = "(none)"
UPLOADED = "uploaded: "
OPTIMIZER_LABELS = {"lbfgs": "L-BFGS", "adam": "Adam"}


def _control() -> dict:
    """Keyword arguments that give a control the common width (a Layout of its own, never a shared one)."""
    return {"style": {"description_width": "110px"}, "layout": widgets.Layout(width="300px")}


@dataclass
class Run:
    """One run that ended: the settings it started with and what ``transfer`` returned."""

    number: int
    settings: dict
    result: Result

    @property
    def image(self) -> torch.Tensor:
        return self.result.image

    def parameters(self) -> dict:
        """The settings, the library's own record of the call, and how the run went (JSON-ready)."""
        return {
            "run": self.number,
            **self.settings,
            "loss": self.result.params["loss"],
            "transfer": self.result.params,
            "evaluations": self.result.evaluations,
            "seconds": round(self.result.seconds, 2),
            "stopped": self.result.stopped,
            "first_losses": {name: values[0] for name, values in self.result.history.items()},
            "final_losses": self.result.final_losses,
            "events": self.result.events,
        }

    def caption(self) -> str:
        """A few short HTML lines that tell this run from its neighbours in the strip."""
        s = self.settings
        styles = s["style"] + (f" + {s['second_style']} ({s['second_style_weight']:g})" if s["second_style"] else "")
        if self.result.stopped:
            ending = f"stopped at {self.result.evaluations} of {s['steps']}"
        else:
            ending = f"{self.result.evaluations} evaluations"
        lines = [
            f"{s['content']} × {styles}",
            f"style {s['style_weight']:.2g} · content {s['content_weight']:g} · tv {s['tv_weight']:g}",
            f"content layer {s['content_layer']}",
            f"style layers {' '.join(s['style_layers'])}",
            f"{s['init']} · {OPTIMIZER_LABELS[s['optimizer']]} · seed {s['seed']} · {s['size']} px"
            + (" · own colours" if s["preserve_colors"] else ""),
            f"{ending} · {self.result.seconds:.1f} s",
            f"total loss {self.result.final_losses['total']:.3g}",
        ]
        return f"<b>#{self.number}</b> " + "<br>".join(html.escape(line) for line in lines)

    def file_stem(self) -> str:
        """A file name (without suffix) that says what the picture is and does not repeat across sessions."""
        names = "_".join(_safe(s) for s in (self.settings["content"], self.settings["style"]))
        return f"{time.strftime('%Y%m%d-%H%M%S')}_run{self.number}_{names}"


class Explorer:
    """The controls, the live preview, the strip of runs, and the buttons that drive them.

    ``model``: a VGG19 to use (default: ``weights`` on ``device``, loaded once
    per process). ``size`` and ``steps`` are the controls' starting values
    (None: ``SIZE`` and ``STEPS``);
    ``preview_every`` is how many evaluations pass between preview updates;
    ``output_dir`` is where Save writes, until the person changes it.
    """

    def __init__(
        self,
        model: VGG19 | None = None,
        *,
        weights: str = profiles.WEIGHTS,
        device: str = profiles.DEVICE,
        size: int | None = None,
        steps: int | None = None,
        preview_every: int = PREVIEW_EVERY,
        output_dir: str | Path = "outputs/explorer",
    ):
        self.model = model if model is not None else _model(weights, device)
        self.preview_every = preview_every
        self.runs: list[Run] = []
        self.error: BaseException | None = None  # the last unexpected error, for whoever debugs it
        self._uploads: dict[str, Image.Image] = {}
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._history: dict[str, list[float]] = {}
        self._plotted = 0.0  # when the loss curve was last drawn (perf_counter seconds)
        self._compared: list[int] = []  # the runs picked for comparison, at most two
        self._compare_toggles: dict[int, widgets.ToggleButton] = {}
        self._syncing = False
        self._build(size or SIZE, steps or STEPS, output_dir)

    # ----------------------------------------------------------------------------------
    # What a person does: Run, Stop, Save, upload.

    def run(self) -> bool:
        """Start a run with the current settings; False, with a message, when it cannot start."""
        if self.running:
            self._say("A run is already going: press Stop first.", error=True)
            return False
        try:
            settings, loss, content, styles = self._prepare()
        except USER_ERRORS as error:
            self._say(str(error), error=True)
            return False
        self._stop.clear()
        self._history = {}
        self._plotted = 0.0
        self.progress.max = settings["steps"]
        self.progress.value = 0
        self.progress_label.value = ""
        self.run_button.disabled = True
        self.stop_button.disabled = False
        height, width = content.shape[-2:]
        self._say(f"Running {settings['steps']} evaluations at {width}x{height} px…")
        self._worker = threading.Thread(target=self._work, args=(settings, loss, content, styles), daemon=True)
        self._worker.start()
        return True

    def stop(self) -> None:
        """Ask the running optimization to end before its next evaluation."""
        if self.running:
            self._stop.set()
            self._say("Stopping…")

    def wait(self, timeout: float | None = None) -> Run | None:
        """Block until the current run has ended; return the latest run (None if none ended)."""
        if self._worker is not None:
            self._worker.join(timeout)
            if self._worker.is_alive():
                raise TimeoutError(f"The run is still going after {timeout} s.")
        return self.runs[-1] if self.runs else None

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def save(self, folder: str | Path | None = None, run: int | None = None) -> tuple[Path, Path] | None:
        """Write run number ``run`` (default: the latest) as ``<stem>.png`` and ``<stem>.json`` into
        ``folder`` (default: the folder in the UI); return both paths, or None with a message."""
        if not self.runs:
            self._say("Nothing to save yet: press Run first.", error=True)
            return None
        run = self._run(run)
        folder = Path(folder if folder is not None else self.output_dir.value.strip() or ".").expanduser()
        stem = run.file_stem()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            picture = save_image(run.image, folder / f"{stem}.png")
            record = folder / f"{stem}.json"
            with atomic_write(record, "w") as handle:
                json.dump(run.parameters(), handle, indent=1)
        except OSError as error:
            self._say(f"Cannot save into {folder} ({error.strerror or error}): choose another folder.", error=True)
            return None
        self._say(f"Saved run {run.number} as {picture} with its parameters in {record.name}.")
        return picture, record

    def restore(self, run: int | None = None) -> None:
        """Put run number ``run``'s settings (default: the latest's) back on the controls."""
        if not self.runs:
            self._say("No run to restore yet: press Run first.", error=True)
            return
        chosen = self._run(run)
        s = chosen.settings
        menus = ((self.content, s["content"]), (self.style, s["style"]), (self.second_style, s["second_style"]))
        missing = [name for menu, name in menus if name and name not in menu.options]
        if missing:
            self._say(f"Cannot restore run {chosen.number}: {missing[0]} is no longer available.", error=True)
            return
        self.content.value, self.style.value = s["content"], s["style"]
        self.second_style.value = s["second_style"] or NO_SECOND_STYLE
        if s["second_style"]:
            self.second_style_weight.value = s["second_style_weight"]
        self.content_layer.value, self.style_layers.value = s["content_layer"], tuple(s["style_layers"])
        for name in ("content_weight", "style_weight", "tv_weight", "init", "optimizer", "steps", "size", "seed",
                     "preserve_colors"):
            getattr(self, name).value = s[name]
        self._say(f"The controls hold run {chosen.number}'s settings again: press Run to run it anew.")

    def compare(self, first: int, second: int) -> None:
        """Show runs ``first`` and ``second`` (numbers) side by side, at their own pixels, with the
        settings in which they differ and their final losses."""
        runs = [self._run(first), self._run(second)]
        self._compared = [run.number for run in runs]
        self._sync_compare_toggles()
        self.comparison.children = (_comparison(*runs),)

    def settings(self) -> dict:
        """The controls' current values: what Run will use and what Save records."""
        second = None if self.second_style.value == NO_SECOND_STYLE else self.second_style.value
        chosen = set(self.style_layers.value)
        return {
            "content": self.content.value,
            "style": self.style.value,
            "second_style": second,
            "second_style_weight": self.second_style_weight.value if second else 0.0,
            "content_layer": self.content_layer.value,
            "style_layers": [name for name in CONV_LAYERS if name in chosen],
            "content_weight": self.content_weight.value,
            "style_weight": self.style_weight.value,
            "tv_weight": self.tv_weight.value,
            "init": self.init.value,
            "optimizer": self.optimizer.value,
            "steps": self.steps.value,
            "size": self.size.value,
            "seed": self.seed.value,
            "preserve_colors": self.preserve_colors.value,
        }

    def loss_spec(self) -> LossSpec:
        """The loss the controls describe (checked: a ValueError says what is wrong)."""
        s = self.settings()
        if not s["style_layers"]:
            raise ValueError("No style layer is selected: pick at least one (Ctrl- or Shift-click picks several).")
        blend = (1 - s["second_style_weight"], s["second_style_weight"]) if s["second_style"] else None
        return LossSpec(
            content_layers=(s["content_layer"],),
            style_layers=tuple(s["style_layers"]),
            content_weight=s["content_weight"],
            style_weight=s["style_weight"],
            tv_weight=s["tv_weight"],
            style_blend=blend,
        )

    def describe(self) -> str:
        """One line that says what pressing Run would do now."""
        s = self.settings()
        return (
            f"Explorer: {s['content']} in the style of {s['style']}, {s['size']} px, {s['steps']} evaluations "
            f"from {s['init']}; press Run."
        )

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.ui._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.describe()
        return bundle

    def _on_upload(self, change, role: str) -> None:
        targets = [self.content] if role == "content" else [self.style, self.second_style]
        for upload in change["new"]:
            try:
                picture = decode_image(bytes(upload["content"]), upload["name"])
            except ValueError as error:
                self._say(str(error), error=True)
                continue
            label = UPLOADED + upload["name"]
            self._uploads[label] = picture
            for dropdown in targets:
                if label not in dropdown.options:
                    kept = dropdown.value  # new options reset a Dropdown to its first entry
                    dropdown.options = (*dropdown.options, label)
                    dropdown.value = kept
            targets[0].value = label
            self._show_thumbnails()
            self._say(f"Uploaded {upload['name']} ({picture.width}x{picture.height} px) as the {role} image.")

    # ----------------------------------------------------------------------------------
    # The run, in its own thread.

    def _prepare(self):
        settings = self.settings()
        loss = self.loss_spec()
        size = settings["size"]
        content = pil_to_tensor(resize(self._picture(settings["content"]), size))
        style_names = [settings["style"]] + ([settings["second_style"]] if settings["second_style"] else [])
        styles = [pil_to_tensor(resize(self._picture(name), size)) for name in style_names]
        return settings, loss, content, styles

    def _work(self, settings: dict, loss: LossSpec, content: torch.Tensor, styles: list[torch.Tensor]) -> None:
        started = time.perf_counter()
        try:
            result = transfer(
                content,
                styles,
                model=self.model,
                loss=loss,
                init=settings["init"],
                seed=settings["seed"],
                preserve_colors=settings["preserve_colors"],
                optimizer=settings["optimizer"],
                steps=settings["steps"],
                callback=lambda evaluation, image, losses: self._on_evaluation(evaluation, image, losses, started),
                callback_every=1,
                should_stop=self._stop,
                progress=False,
            )
        except USER_ERRORS as error:
            self._say(str(error), error=True)
        except Exception as error:  # no traceback in the UI, whatever happened
            self.error = error
            if self._stop.is_set():  # stopped before the first evaluation ended: no image exists yet
                self._say("Stopped before the first evaluation ended; there is no picture to keep.")
            else:
                first_line = (str(error).splitlines() or [""])[0]
                self._say(f"The run failed unexpectedly ({type(error).__name__}: {first_line}).", error=True)
        else:
            self._finish(Run(len(self.runs) + 1, settings, result))
        finally:
            self.run_button.disabled = False
            self.stop_button.disabled = True

    def _on_evaluation(self, evaluation: int, image: torch.Tensor, losses, started: float) -> None:
        for name, value in losses.items():
            self._history.setdefault(name, []).append(value)
        self.progress.value = evaluation
        if evaluation % self.preview_every == 0:
            now = time.perf_counter()
            self.preview.value = _png(tensor_to_pil(image))
            self.progress_label.value = (
                f"evaluation {evaluation} of {self.progress.max} · {now - started:.1f} s · loss {losses['total']:.3g}"
            )
            if now - self._plotted >= LOSS_PLOT_EVERY_S:
                self.loss_plot.value = _loss_png(self._history)
                self._plotted = now

    def _finish(self, run: Run) -> None:
        result = run.result
        self.runs.append(run)
        self.preview.value = _png(tensor_to_pil(result.image))
        self.loss_plot.value = _loss_png(result.history)
        self.progress.value = result.evaluations
        self.progress_label.value = f"{result.evaluations} evaluations · {result.seconds:.1f} s"
        self.strip.children = (self._strip_item(run), *self.strip.children)
        self.save_button.disabled = False
        total = result.history["total"]
        change = f"total loss {total[0]:.3g} → {result.final_losses['total']:.3g}"
        if result.stopped:
            message = (
                f"Stopped run {run.number} after {result.evaluations} of {run.settings['steps']} evaluations "
                f"({result.seconds:.1f} s); {change}."
            )
        else:
            message = f"Run {run.number} done: {result.evaluations} evaluations in {result.seconds:.1f} s; {change}."
        self._say(" ".join([message, *result.events[-1:]]))

    # ----------------------------------------------------------------------------------
    # Building and updating the widgets.

    def _build(self, size: int, steps: int, output_dir) -> None:
        self._make_image_controls()
        self._make_loss_controls()
        self._make_run_controls(size, steps, output_dir)
        self._wire()
        self.ui = self._layout()

    def _make_image_controls(self) -> None:
        contents, styles = assets.names("content"), assets.names("style")
        self.content = widgets.Dropdown(options=contents, value=contents[0], description="content", **_control())
        self.content_upload = widgets.FileUpload(accept="image/*", description="own content")
        self.style = widgets.Dropdown(options=styles, value=styles[0], description="style", **_control())
        self.style_upload = widgets.FileUpload(accept="image/*", description="own style")
        self.second_style = widgets.Dropdown(
            options=[NO_SECOND_STYLE, *styles], value=NO_SECOND_STYLE, description="second style", **_control()
        )
        self.second_style_weight = widgets.FloatSlider(
            value=0.5, min=0, max=1, step=0.05, description="its blend weight", **_control()
        )
        # Shown at their own size: a column would otherwise stretch them to its width.
        self.content_thumbnail, self.style_thumbnail, self.second_style_thumbnail = (
            widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start")) for _ in range(3)
        )

    def _make_loss_controls(self) -> None:
        self.content_layer = widgets.Dropdown(
            options=CONV_LAYERS, value=profiles.CONTENT_LAYERS[0], description="content layer", **_control()
        )
        self.style_layers = widgets.SelectMultiple(
            options=CONV_LAYERS, value=profiles.STYLE_LAYERS, rows=len(CONV_LAYERS), description="style layers",
            **_control(),
        )
        self.content_weight = widgets.FloatSlider(
            value=profiles.CONTENT_WEIGHT, min=0, max=10, step=0.1, description="content weight", **_control()
        )
        self.style_weight = widgets.FloatLogSlider(
            value=STYLE_WEIGHT, base=10, min=0, max=7, step=0.5, readout_format=".0e",
            description="style weight", **_control(),
        )
        # Neighbouring-pixel differences are about 0.01 in a photo, so weights up to 100 span "off" to "blurred".
        self.tv_weight = widgets.FloatSlider(
            value=profiles.TV_WEIGHT, min=0, max=100, step=0.5, description="total variation", **_control()
        )
        self.preserve_colors = widgets.Checkbox(value=False, description="keep the content's colours", indent=False)

    def _make_run_controls(self, size: int, steps: int, output_dir) -> None:
        self.init = widgets.ToggleButtons(options=list(INITS), value=INIT, description="start from")
        self.optimizer = widgets.ToggleButtons(
            options=[(OPTIMIZER_LABELS[name], name) for name in OPTIMIZERS], value=profiles.OPTIMIZER,
            description="optimizer",
        )
        for toggle in (self.init, self.optimizer):
            toggle.style = {"description_width": "110px", "button_width": "80px"}
        self.steps = widgets.IntSlider(value=steps, min=10, max=1000, step=10, description="evaluations", **_control())
        self.size = widgets.IntSlider(value=size, min=64, max=512, step=32, description="size (px)", **_control())
        self.seed = widgets.BoundedIntText(value=profiles.SEED, min=0, max=2**31 - 1, description="seed", **_control())

        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.save_button = widgets.Button(description="Save", icon="save", disabled=True)
        self.output_dir = widgets.Text(value=str(output_dir), description="save into", **_control())
        self.message = widgets.HTML()
        self.progress = widgets.IntProgress(value=0, min=0, max=steps, layout=widgets.Layout(width="320px"))
        self.progress_label = widgets.Label()
        blank = Image.new("RGB", (4, 3), (238, 238, 238))
        self.preview = widgets.Image(value=_png(blank), format="png")  # at the picture's own pixels
        self.loss_plot = widgets.Image(value=_loss_png({}), format="png")
        self.strip = widgets.HBox(layout=widgets.Layout(overflow="auto", width="100%"))
        self.comparison = widgets.VBox()

    def _wire(self) -> None:
        # Class names that a browser (or a person's CSS) can find the parts by.
        for name in ("run_button", "stop_button", "save_button", "preview", "loss_plot", "strip", "comparison",
                     "message"):
            getattr(self, name).add_class(f"nst-{name.replace('_', '-')}")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self.save())
        self.content_upload.observe(lambda change: self._on_upload(change, "content"), names="value")
        self.style_upload.observe(lambda change: self._on_upload(change, "style"), names="value")
        for dropdown in (self.content, self.style, self.second_style):
            dropdown.observe(lambda _: self._show_thumbnails(), names="value")
        self._show_thumbnails()

    def _layout(self) -> widgets.Widget:
        def column(*children):
            return widgets.VBox(list(children), layout=widgets.Layout(margin="0 12px 8px 0"))

        return widgets.VBox(
            [
                widgets.HBox(
                    [
                        column(self.content, self.content_upload, self.content_thumbnail),
                        column(self.style, self.style_upload, self.style_thumbnail),
                        column(self.second_style, self.second_style_weight, self.second_style_thumbnail),
                    ]
                ),
                widgets.HBox(
                    [
                        column(self.content_layer, self.style_layers),
                        column(self.content_weight, self.style_weight, self.tv_weight, self.preserve_colors),
                        column(self.init, self.optimizer, self.steps, self.size, self.seed),
                    ]
                ),
                widgets.HBox([self.run_button, self.stop_button, self.save_button, self.output_dir]),
                self.message,
                widgets.HBox([self.progress, self.progress_label]),
                widgets.HBox([self.preview, self.loss_plot]),
                widgets.HTML("<b>Runs</b>, newest first"),
                self.strip,
                self.comparison,
            ]
        )

    def _run(self, number: int | None) -> Run:
        """The run with this number (None: the latest); a ValueError names the numbers there are."""
        if number is None:
            return self.runs[-1]
        for run in self.runs:
            if run.number == number:
                return run
        raise ValueError(f"There is no run {number}: the runs are {', '.join(str(r.number) for r in self.runs)}.")

    def _on_compare_toggle(self, number: int, on: bool) -> None:
        """Compare keeps the two runs picked last; with both picked, they appear side by side."""
        if self._syncing:
            return
        if on and number not in self._compared:
            self._compared = (self._compared + [number])[-2:]
        elif not on and number in self._compared:
            self._compared.remove(number)
        self._sync_compare_toggles()
        if len(self._compared) == 2:
            first, second = sorted(self._compared)
            self.comparison.children = (_comparison(self._run(first), self._run(second)),)
            self._say(f"Runs {first} and {second} are side by side under the strip.")
        else:
            self.comparison.children = ()
            if self._compared:
                self._say(f"Run {self._compared[0]} is picked for comparison: pick a second run.")

    def _sync_compare_toggles(self) -> None:
        """Each run's Compare button shows whether it is picked (without reacting to its own change)."""
        self._syncing = True
        try:
            for number, toggle in self._compare_toggles.items():
                toggle.value = number in self._compared
        finally:
            self._syncing = False

    def _picture(self, choice: str) -> Image.Image:
        return self._uploads[choice] if choice in self._uploads else _named_picture(choice)

    def _show_thumbnails(self) -> None:
        """Show each chosen image small beside its menu; the blend weight only matters with a second style."""
        blending = self.second_style.value != NO_SECOND_STYLE
        self.second_style_weight.disabled = not blending
        self.second_style_thumbnail.layout.display = None if blending else "none"
        pairs = [(self.content, self.content_thumbnail), (self.style, self.style_thumbnail)]
        for dropdown, thumbnail in pairs + ([(self.second_style, self.second_style_thumbnail)] if blending else []):
            try:
                picture = self._picture(dropdown.value).copy()
            except ValueError as error:
                self._say(str(error), error=True)
                continue
            picture.thumbnail((THUMBNAIL, THUMBNAIL))
            thumbnail.value = _png(picture)

    def _strip_item(self, run: Run) -> widgets.Widget:
        picture = widgets.Image(value=_png(tensor_to_pil(run.image)), format="png", width=f"{STRIP_WIDTH}px")
        caption = widgets.HTML(f"<div style='font-size: 11px; line-height: 1.3'>{run.caption()}</div>")
        small = {"layout": widgets.Layout(width="62px", padding="0")}
        save = widgets.Button(description="Save", tooltip=f"save run {run.number} into the folder above", **small)
        restore = widgets.Button(description="Restore", tooltip=f"put run {run.number}'s settings back", **small)
        compare = widgets.ToggleButton(description="Compare", tooltip="pick two runs to see side by side", **small)
        save.on_click(lambda _: self.save(run=run.number))
        restore.on_click(lambda _: self.restore(run.number))
        compare.observe(lambda change: self._on_compare_toggle(run.number, change["new"]), names="value")
        self._compare_toggles[run.number] = compare
        for button, name in ((save, "save"), (restore, "restore"), (compare, "compare")):
            button.add_class(f"nst-strip-{name}")
        layout = widgets.Layout(width=f"{STRIP_WIDTH + 8}px", min_width=f"{STRIP_WIDTH + 8}px", margin="0 10px 0 0")
        return widgets.VBox([picture, caption, widgets.HBox([save, restore, compare])], layout=layout)

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "inherit"
        self.message.value = f"<span style='color: {colour}'>{html.escape(text)}</span>"


def _comparison(first: Run, second: Run) -> widgets.Widget:
    """Two runs side by side at their own pixels, the settings in which they differ, and their losses."""
    differing = [key for key in first.settings if first.settings[key] != second.settings[key]]
    rows = [(key.replace("_", " "), first.settings[key], second.settings[key]) for key in differing]
    rows.append(("evaluations", first.result.evaluations, second.result.evaluations))
    rows += [(f"final {name} loss", f"{first.result.final_losses[name]:.3g}", f"{second.result.final_losses[name]:.3g}")
             for name in first.result.final_losses if name in second.result.final_losses]
    head = f"<tr><th></th><th>run {first.number}</th><th>run {second.number}</th></tr>"
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
                   for k, a, b in rows)
    table = widgets.HTML(f"<table style='font-size: 12px; border-spacing: 8px 2px'>{head}{body}</table>")
    pictures = [
        widgets.VBox([widgets.HTML(f"<b>Run {run.number}</b>"),
                      widgets.Image(value=_png(tensor_to_pil(run.image)), format="png")],
                     layout=widgets.Layout(margin="0 12px 0 0"))
        for run in (first, second)
    ]
    title = widgets.HTML(f"<b>Runs {first.number} and {second.number} side by side</b>"
                         + ("" if differing else " (the same settings)"))
    return widgets.VBox([title, widgets.HBox(pictures), table])


@lru_cache(maxsize=2)
def _model(weights: str, device: str) -> VGG19:
    return VGG19(weights, profiles.POOLING).to(pick_device(device))


@lru_cache(maxsize=16)
def _named_picture(name: str) -> Image.Image:
    return open_image(assets.resolve(name))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name.removeprefix(UPLOADED)).stem).strip("-") or "image"


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _loss_png(history: dict[str, list[float]]) -> bytes:
    """The loss terms of one run against evaluations, log scale, as PNG bytes.

    A bare Figure, not pyplot: it is drawn from the run's thread, and pyplot's
    global state is neither thread-safe nor wanted in a notebook's output.
    """
    figure = Figure(figsize=(4.2, 2.4), dpi=80)
    figure.subplots_adjust(left=0.17, right=0.97, top=0.95, bottom=0.19)  # fixed: tight_layout doubles the cost
    axis = figure.add_subplot()
    for name, values in history.items():
        positive = [(i + 1, v) for i, v in enumerate(values) if v > 0]
        if positive:
            axis.plot(*zip(*positive), label=name, linewidth=1.4 if name == "total" else 1.0)
    if any(history.values()):
        axis.set_yscale("log")
        axis.legend(fontsize=8, loc="upper right")
    else:
        hint = "the losses appear here during a run"
        axis.text(0.5, 0.5, hint, ha="center", va="center", transform=axis.transAxes, color="gray")
    axis.set_xlabel("evaluation", fontsize=9)
    axis.set_ylabel("loss (relative)", fontsize=9)
    axis.tick_params(labelsize=8)
    axis.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
