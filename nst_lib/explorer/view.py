"""The explorer's widgets: controls laid out in a notebook, every click forwarded to a ``Session``.

``Controls`` holds one widget per setting and turns them into ``Settings``
(and back, for Restore). ``Explorer`` lays them out with the buttons, the
preview, the loss curve and the strip of runs, and shows what its session
tells it. Every control and button is an attribute, so that a test can set
values and press buttons from Python as a person does in the browser.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image

from .. import assets, profiles
from ..optimize import INITS, OPTIMIZERS
from ..vgg import CONV_LAYERS, VGG19
from .session import Comparison, Listener, Preview, Run, Session
from .settings import OPTIMIZER_LABELS, SIZE, STEPS, Settings

THUMBNAIL = 160
STRIP_WIDTH = 192
NO_SECOND_STYLE = "(none)"
LOSS_DECADES = 4
TERM_COLOURS = {"total": "currentColor", "content": "#0b57d0", "style": "#d9480f", "tv": "#2b8a3e"}


def _control() -> dict:
    """Keyword arguments that give a control the common width (a Layout of its own, never a shared one)."""
    return {"style": {"description_width": "110px"}, "layout": widgets.Layout(width="300px")}


class Controls:
    """One widget per setting; ``settings()`` reads them, ``show(settings)`` sets them."""

    def __init__(self, start: Settings):
        contents, styles = assets.names("content"), assets.names("style")
        self.content = widgets.Dropdown(options=contents, value=start.content, description="content", **_control())
        self.content_upload = widgets.FileUpload(accept="image/*", description="own content")
        self.style = widgets.Dropdown(options=styles, value=start.styles[0], description="style", **_control())
        self.style_upload = widgets.FileUpload(accept="image/*", description="own style")
        self.second_style = widgets.Dropdown(
            options=[NO_SECOND_STYLE, *styles], value=NO_SECOND_STYLE, description="second style", **_control()
        )
        self.second_style_weight = widgets.FloatSlider(
            value=0.5, min=0, max=1, step=0.05, description="its blend weight", **_control()
        )
        self.content_layer = widgets.Dropdown(
            options=CONV_LAYERS, value=start.content_layers[0], description="content layer", **_control()
        )
        self.style_layers = widgets.SelectMultiple(
            options=CONV_LAYERS, value=start.style_layers, rows=len(CONV_LAYERS), description="style layers",
            **_control(),
        )
        self.content_weight = widgets.FloatSlider(
            value=start.content_weight, min=0, max=10, step=0.1, description="content weight", **_control()
        )
        self.style_weight = widgets.FloatLogSlider(
            value=start.style_weight, base=10, min=0, max=7, step=0.5, readout_format=".0e",
            description="style weight", **_control(),
        )
        # Neighbouring-pixel differences are about 0.01 in a photo, so weights up to 100 span "off" to "blurred".
        self.tv_weight = widgets.FloatSlider(
            value=start.tv_weight, min=0, max=100, step=0.5, description="total variation", **_control()
        )
        self.preserve_colors = widgets.Checkbox(value=start.preserve_colors, description="keep the content's colours",
                                                indent=False)
        self.init = widgets.ToggleButtons(options=list(INITS), value=start.init, description="start from")
        self.optimizer = widgets.ToggleButtons(
            options=[(OPTIMIZER_LABELS[name], name) for name in OPTIMIZERS], value=start.optimizer,
            description="optimizer",
        )
        for toggle in (self.init, self.optimizer):
            toggle.style = {"description_width": "110px", "button_width": "80px"}
        self.steps = widgets.IntSlider(value=start.steps, min=10, max=1000, step=10, description="evaluations",
                                       **_control())
        self.size = widgets.IntSlider(value=start.size, min=64, max=512, step=32, description="size (px)",
                                      **_control())
        self.seed = widgets.BoundedIntText(value=start.seed, min=0, max=2**31 - 1, description="seed", **_control())

    def settings(self) -> Settings:
        """What the controls say now: what Run will use."""
        second = None if self.second_style.value == NO_SECOND_STYLE else self.second_style.value
        share = self.second_style_weight.value
        chosen = set(self.style_layers.value)
        return Settings(
            content=self.content.value,
            styles=(self.style.value, second) if second else (self.style.value,),
            style_blend=(1 - share, share) if second else None,
            content_layers=(self.content_layer.value,),
            style_layers=tuple(name for name in CONV_LAYERS if name in chosen),
            content_weight=self.content_weight.value,
            style_weight=self.style_weight.value,
            tv_weight=self.tv_weight.value,
            init=self.init.value,
            optimizer=self.optimizer.value,
            steps=self.steps.value,
            size=self.size.value,
            seed=self.seed.value,
            preserve_colors=self.preserve_colors.value,
        )

    def show(self, settings: Settings) -> None:
        """Set every control to ``settings`` (a ValueError when the controls cannot hold them)."""
        if len(settings.styles) > 2 or len(settings.content_layers) != 1:
            raise ValueError("These settings have more styles or content layers than the controls hold.")
        self.content.value, self.style.value = settings.content, settings.styles[0]
        if len(settings.styles) == 2:
            blend = settings.style_blend or (1.0, 1.0)
            self.second_style.value, self.second_style_weight.value = settings.styles[1], blend[1] / sum(blend)
        else:
            self.second_style.value = NO_SECOND_STYLE
        self.content_layer.value, self.style_layers.value = settings.content_layers[0], settings.style_layers
        for name in ("content_weight", "style_weight", "tv_weight", "init", "optimizer", "steps", "size", "seed",
                     "preserve_colors"):
            getattr(self, name).value = getattr(settings, name)

    def add_choice(self, label: str, role: str) -> None:
        """Offer an uploaded image in the menus of its role, and choose it."""
        menus = [self.content] if role == "content" else [self.style, self.second_style]
        for menu in menus:
            if label not in menu.options:
                kept = menu.value  # new options reset a Dropdown to its first entry
                menu.options = (*menu.options, label)
                menu.value = kept
        menus[0].value = label


class Explorer(Listener):
    """The controls, the live preview, the strip of runs, and the buttons that drive a ``Session``.

    ``model``: a VGG19 to use (default: ``weights`` on ``device``, loaded in the
    background). ``size`` and ``steps`` are the controls' starting values
    (None: the first Run's); ``preview_every`` is how many evaluations pass
    between previews; ``output_dir`` is where Save writes, until the person
    changes it. Everything a Run needs is prepared in the background at once.
    """

    def __init__(self, model: VGG19 | None = None, *, weights: str = profiles.WEIGHTS,
                 device: str = profiles.DEVICE, precision: str = profiles.PRECISION, size: int | None = None,
                 steps: int | None = None,
                 preview_every: int | None = None, output_dir: str | Path = "outputs/explorer"):
        options = {} if preview_every is None else {"preview_every": preview_every}
        self.session = Session(model, weights=weights, device=device, precision=precision, listener=self, **options)
        start = Settings.first(size=size or SIZE, steps=steps or STEPS)
        self.controls = Controls(start)
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.save_button = widgets.Button(description="Save", icon="save", disabled=True)
        self.instant_button = widgets.Button(description="Instant", icon="bolt",
                                             tooltip="the generator shipped for this style, in one forward pass")
        self.output_dir = widgets.Text(value=str(output_dir), description="save into", **_control())
        self.message = widgets.HTML()
        self.progress = widgets.IntProgress(value=0, min=0, max=start.steps, layout=widgets.Layout(width="320px"))
        self.progress_label = widgets.Label()
        # At the picture's own pixels: in a row, a flex item would otherwise stretch to the row's height.
        self.preview = widgets.Image(value=_png(Image.new("RGB", (4, 3), (238, 238, 238))), format="png",
                                     layout=widgets.Layout(align_self="flex-start"))
        self.loss_plot = widgets.HTML(_loss_svg({}, start.steps))
        self.runs_strip = Strip(self)
        self.strip, self.comparison = self.runs_strip.box, self.runs_strip.comparison
        self.thumbnails = {role: widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
                           for role in ("content", "style", "second_style")}
        self._wire()
        self.ui = self._layout()
        self.session.prepare(start)

    def __getattr__(self, name):
        """Every control is an attribute of the explorer as well (``explorer.style_weight``)."""
        controls = self.__dict__.get("controls")
        if controls is not None and hasattr(controls, name):
            return getattr(controls, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # What a person does: forwarded to the session.

    def run(self) -> bool:
        """Start a run with the controls' settings; False, with a message, when it cannot start."""
        try:
            settings = self.settings()
        except ValueError as error:
            self.session.say(str(error), error=True)
            return False
        return self.session.run(settings)

    def instant(self) -> torch.Tensor | None:
        """Show the generator shipped for the controls' style applied to their content (``Session.instant``)."""
        try:
            image = self.session.instant(self.settings())
        except ValueError as error:
            image = self.session.say(str(error), error=True)
        if image is not None:
            self.preview.value = _png(image)
        return image

    def stop(self) -> None:
        self.session.stop()

    def wait(self, timeout: float | None = None) -> Run | None:
        return self.session.wait(timeout)

    def save(self, folder: str | Path | None = None, run: int | None = None):
        """Save run ``run`` (default: the latest) into ``folder`` (default: the folder under the buttons)."""
        return self.session.save(folder if folder is not None else self.output_dir.value.strip() or ".", run)

    def restore(self, run: int | None = None) -> None:
        """Put run ``run``'s settings (default: the latest's) back on the controls."""
        settings = self.session.restore(run)
        if settings is not None:
            self.controls.show(settings)
            number = self.session.find(run).number
            self.session.say(f"The controls hold run {number}'s settings again: press Run to run it anew.")

    def compare(self, first: int, second: int) -> None:
        """Show runs ``first`` and ``second`` side by side under the strip."""
        self.runs_strip.pick(first, second)

    def settings(self) -> Settings:
        return self.controls.settings()

    @property
    def runs(self) -> list[Run]:
        return self.session.runs

    def describe(self) -> str:
        """One line that says what pressing Run would do now."""
        s = self.settings()
        return (f"Explorer: {s.content} in the style of {s.style_names()}, {s.size} px, {s.steps} evaluations "
                f"from {s.init}; press Run.")

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.ui._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.describe()
        return bundle

    # What the session tells: shown.

    def said(self, text: str, error: bool) -> None:
        colour = "#b00020" if error else "inherit"
        self.message.value = f"<span style='color: {colour}'>{html.escape(text)}</span>"

    def started(self, settings: Settings) -> None:
        self.progress.max, self.progress.value, self.progress_label.value = settings.steps, 0, ""
        self.run_button.disabled, self.stop_button.disabled = True, False

    def previewed(self, preview: Preview) -> None:
        self.preview.value = _png(preview.image)
        self.progress.value = preview.evaluation
        self.progress_label.value = (f"evaluation {preview.evaluation} of {preview.steps} · {preview.seconds:.1f} s"
                                     f" · loss {preview.losses['total']:.3g}")
        self.loss_plot.value = _loss_svg(preview.history, preview.steps)

    def finished(self, run: Run) -> None:
        result = run.result
        self.preview.value = _png(run.image)
        self.loss_plot.value = _loss_svg(result.history, run.settings.steps)
        self.progress.value = result.evaluations
        self.progress_label.value = f"{result.evaluations} evaluations · {result.seconds:.1f} s"
        self.runs_strip.add(run)
        self.save_button.disabled = False

    def ended(self) -> None:
        self.run_button.disabled, self.stop_button.disabled = False, True

    # Building and wiring.

    def _wire(self) -> None:
        # Class names that a browser (or a person's CSS) can find the parts by.
        for name in ("run_button", "stop_button", "save_button", "instant_button", "preview", "loss_plot", "strip",
                     "comparison", "message"):
            getattr(self, name).add_class(f"nst-{name.replace('_', '-')}")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self.save())
        self.instant_button.on_click(lambda _: self.instant())
        c = self.controls
        c.content_upload.observe(lambda change: self._on_upload(change, "content"), names="value")
        c.style_upload.observe(lambda change: self._on_upload(change, "style"), names="value")
        for menu in (c.content, c.style, c.second_style):
            menu.observe(lambda _: self._show_thumbnails(), names="value")
        self._show_thumbnails()

    def _layout(self) -> widgets.Widget:
        def column(*children):
            return widgets.VBox(list(children), layout=widgets.Layout(margin="0 12px 8px 0"))

        c, t = self.controls, self.thumbnails
        return widgets.VBox([
            widgets.HBox([column(c.content, c.content_upload, t["content"]),
                          column(c.style, c.style_upload, t["style"]),
                          column(c.second_style, c.second_style_weight, t["second_style"])]),
            widgets.HBox([column(c.content_layer, c.style_layers),
                          column(c.content_weight, c.style_weight, c.tv_weight, c.preserve_colors),
                          column(c.init, c.optimizer, c.steps, c.size, c.seed)]),
            widgets.HBox([self.run_button, self.stop_button, self.instant_button, self.save_button, self.output_dir]),
            self.message,
            widgets.HBox([self.progress, self.progress_label]),
            widgets.HBox([self.preview, self.loss_plot]),
            widgets.HTML("<b>Runs</b>, newest first"),
            self.strip,
            self.comparison,
        ])

    def _on_upload(self, change, role: str) -> None:
        for upload in change["new"]:
            try:
                label = self.session.pictures.add_upload(upload["name"], bytes(upload["content"]))
            except ValueError as error:
                self.session.say(str(error), error=True)
                continue
            self.controls.add_choice(label, role)
            picture = self.session.pictures[label]
            self.session.say(f"Uploaded {upload['name']} ({picture.width}x{picture.height} px) as the {role} image.")

    def _show_thumbnails(self) -> None:
        """Show each chosen image small beside its menu; the blend weight only matters with a second style."""
        c = self.controls
        blending = c.second_style.value != NO_SECOND_STYLE
        c.second_style_weight.disabled = not blending
        self.thumbnails["second_style"].layout.display = None if blending else "none"
        for role in ("content", "style", "second_style")[: 3 if blending else 2]:
            try:
                picture = self.session.pictures[getattr(c, role).value].copy()
            except ValueError as error:
                self.session.say(str(error), error=True)
                continue
            picture.thumbnail((THUMBNAIL, THUMBNAIL))
            self.thumbnails[role].value = _png(picture)


class Strip:
    """The runs that ended, newest first, each with Save, Restore and Compare, and the comparison under them."""

    def __init__(self, explorer: Explorer):
        self.explorer = explorer
        self.box = widgets.HBox(layout=widgets.Layout(overflow="auto", width="100%"))
        self.comparison = widgets.VBox()
        self.picked: list[int] = []  # the runs picked for comparison, at most two
        self.toggles: dict[int, widgets.ToggleButton] = {}

    def add(self, run: Run) -> None:
        picture = widgets.Image(value=_png(run.image), format="png", width=f"{STRIP_WIDTH}px")
        caption = widgets.HTML(f"<div style='font-size: 11px; line-height: 1.3'>{_caption(run)}</div>")
        small = {"layout": widgets.Layout(width="62px", padding="0")}
        save = widgets.Button(description="Save", tooltip=f"save run {run.number} into the folder above", **small)
        restore = widgets.Button(description="Restore", tooltip=f"put run {run.number}'s settings back", **small)
        compare = widgets.ToggleButton(description="Compare", tooltip="pick two runs to see side by side", **small)
        save.on_click(lambda _: self.explorer.save(run=run.number))
        restore.on_click(lambda _: self.explorer.restore(run.number))
        compare.observe(lambda change: self._on_toggle(run.number, change["new"]), names="value")
        self.toggles[run.number] = compare
        for button, name in ((save, "save"), (restore, "restore"), (compare, "compare")):
            button.add_class(f"nst-strip-{name}")
        layout = widgets.Layout(width=f"{STRIP_WIDTH + 8}px", min_width=f"{STRIP_WIDTH + 8}px", margin="0 10px 0 0")
        item = widgets.VBox([picture, caption, widgets.HBox([save, restore, compare])], layout=layout)
        self.box.children = (item, *self.box.children)

    def pick(self, *numbers: int) -> None:
        """Pick these runs (the last two count); with two picked, show them side by side."""
        session = self.explorer.session
        comparison = session.compare(*sorted(numbers[-2:])) if len(numbers) >= 2 else None  # checks the numbers
        self.picked = list(numbers[-2:])
        for number, toggle in self.toggles.items():
            toggle.value = number in self.picked
        self.comparison.children = () if comparison is None else (_comparison(comparison),)
        if comparison is not None:
            session.say(f"Runs {comparison.first.number} and {comparison.second.number} are side by side under "
                        "the strip.")
        elif self.picked:
            session.say(f"Run {self.picked[0]} is picked for comparison: pick a second run.")

    def _on_toggle(self, number: int, on: bool) -> None:
        """Compare keeps the two runs picked last."""
        if on != (number in self.picked):  # else the toggle only followed what was already picked
            self.pick(*([*self.picked, number] if on else [n for n in self.picked if n != number]))


def _caption(run: Run) -> str:
    """A few short HTML lines that tell this run from its neighbours in the strip."""
    return f"<b>#{run.number}</b> " + "<br>".join(html.escape(line) for line in run.summary())


def _comparison(comparison: Comparison) -> widgets.Widget:
    """Two runs side by side at their own pixels, the settings in which they differ, and their losses."""
    first, second = comparison.first, comparison.second
    head = f"<tr><th></th><th>run {first.number}</th><th>run {second.number}</th></tr>"
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
                   for k, a, b in comparison.rows)
    table = widgets.HTML(f"<table style='font-size: 12px; border-spacing: 8px 2px'>{head}{body}</table>")
    pictures = [
        widgets.VBox([widgets.HTML(f"<b>Run {run.number}</b>"), widgets.Image(value=_png(run.image), format="png")],
                     layout=widgets.Layout(margin="0 12px 0 0"))
        for run in (first, second)
    ]
    title = widgets.HTML(f"<b>Runs {first.number} and {second.number} side by side</b>"
                         + (" (the same settings)" if comparison.same_settings else ""))
    return widgets.VBox([title, widgets.HBox(pictures), table])


def _png(picture: Image.Image | torch.Tensor) -> bytes:
    """PNG bytes of a PIL image or an image tensor (1, 3, H, W) in [0, 1], compressed lightly: a preview is
    shown once and replaced, so speed matters more than bytes."""
    if isinstance(picture, torch.Tensor):
        array = picture.detach()[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        picture = Image.fromarray(np.ascontiguousarray((array * 255 + 0.5).astype(np.uint8)), mode="RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _loss_svg(history: dict[str, list[float]], steps: int, width: int = 340, height: int = 200) -> str:
    """The loss terms of one run against evaluations, on a log scale, as an inline SVG.

    The scale spans at most ``LOSS_DECADES`` decades below the largest value; smaller values (a content
    loss that starts at 0 from the photograph) are drawn on the bottom edge. Drawn as text in the run's
    thread between evaluations, cheap enough for every preview (docs/explorer.md, "After the click").
    """
    left, right, top, bottom = 46, 10, 22, 30
    values = [v for series in history.values() for v in series if v > 0 and math.isfinite(v)]
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "style='font: 10px sans-serif; color: inherit' role='img' aria-label='loss curve'>",
             f"<rect x='{left}' y='{top}' width='{width - left - right}' height='{height - top - bottom}' "
             "fill='none' stroke='currentColor' stroke-opacity='0.4'/>",
             f"<text x='{(width + left) / 2}' y='{height - 4}' text-anchor='middle' fill='currentColor'>evaluation"
             f" (of {steps})</text>"]
    if not values:
        parts.append(f"<text x='{(width + left) / 2}' y='{height / 2}' text-anchor='middle' fill='gray'>"
                     "the losses appear here during a run</text></svg>")
        return "".join(parts)
    high = math.ceil(math.log10(max(values)))
    low = max(math.floor(math.log10(min(values))), high - LOSS_DECADES)
    high = max(high, low + 1)
    span_x = max(steps, max(len(series) for series in history.values()), 2) - 1

    def x(i: int) -> float:
        return left + (width - left - right) * i / span_x

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - max(math.log10(value), low)) / (high - low)

    for decade in range(low, high + 1):
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y(10.0**decade):.1f}' y2='{y(10.0**decade):.1f}'"
                     " stroke='currentColor' stroke-opacity='0.15'/>"
                     f"<text x='{left - 4}' y='{y(10.0**decade) + 3:.1f}' text-anchor='end' fill='currentColor'>"
                     f"{10.0**decade:g}</text>")
    for column, (name, series) in enumerate(history.items()):
        colour = TERM_COLOURS.get(name, "#7048e8")
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(series) if v > 0 and math.isfinite(v))
        parts.append(f"<polyline points='{points}' fill='none' stroke='{colour}' "
                     f"stroke-width='{1.6 if name == 'total' else 1.1}'/>"
                     f"<text x='{left + 60 * column}' y='{top - 8}' fill='{colour}'>— {html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)
