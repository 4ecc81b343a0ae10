"""The emotion switch's view: pick or upload a clip and a target emotion, hear and see the result.

:class:`EmotionSwitch` is the ipywidgets view over :class:`~emogan_utils.switch.SwitchEngine`
(which computes and caches every choice); tests drive it in-process, without a browser, by
setting widget values and clicking buttons. The engine's names are re-exported here.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator, Sequence
from pathlib import Path

import ipywidgets as widgets

from emogan_utils.checkpoint import CheckpointError
from emogan_utils.config import VOCODERS, EmoganError, Paths
from emogan_utils.data import EMOTIONS, INTENSITIES, load_corpus, recording
from emogan_utils.features import AudioError
from emogan_utils.switch import (HOW_TO_TRAIN, PLAYERS, Analysis, Source, SwitchConfig,
                                 SwitchEngine, SwitchResult, corpus_source, load_engine,
                                 png_bytes, upload_source, wav_bytes)
from emogan_utils.train import missing_models, train_quick_models

__all__ = ["HOW_TO_TRAIN", "PLAYERS", "Analysis", "EmotionSwitch", "Source", "SwitchConfig",
           "SwitchEngine", "SwitchResult", "corpus_source", "emotion_switch", "load_engine",
           "missing_models_message", "png_bytes", "upload_source", "wav_bytes"]


# --- the widget ------------------------------------------------------------------------------

VOCODER_LABELS = {
    "contours": ("contours", "the contour converter: pitch, energy, envelope and timing "
                             "converted, played by WORLD"),
    "world": ("GAN + WORLD", "the GAN's mel change on the source's WORLD envelope, pitch "
                             "converted"),
    "griffin-lim": ("GAN + Griffin-Lim", "the GAN's whole mel, phases estimated by Griffin-Lim")}
"""Each path's button label and tooltip."""


def missing_models_message(missing: list[Path]) -> str:
    """What to run to make the missing checkpoints."""
    lines = []
    for path in missing:
        notebook, command = HOW_TO_TRAIN[path.name]
        shown = html.escape(str(path))
        lines.append(f"<li><code>{shown}</code>: run {notebook} (or <code>python -m emogan_utils "
                     f"{command} --quick --out {shown}</code>)</li>")
    return (f"<b>No trained model yet.</b><ul>{''.join(lines)}</ul>Or train quick models here "
            f"(a few minutes on a laptop CPU; the translations will sound rough).")


def _message(text: str, error: bool = False) -> str:
    """Status-line HTML (``text`` is HTML: escape anything that came from outside)."""
    colour = "#b00020" if error else "#333"
    return f'<div style="color:{colour}; line-height:1.4">{text}</div>'


class EmotionSwitch:
    """The interactive emotion switch; display it (or its ``widget``) in a notebook.

    Without checkpoints it explains what to run and offers to train quick models. Every
    choice goes through :meth:`refresh`, which shows either the result or a message.
    """

    def __init__(self, corpus: str | Path, checkpoints: str | Path | None = None,
                 config: SwitchConfig = SwitchConfig()):
        paths = Paths.from_env()
        self.corpus = Path(corpus)
        self.checkpoints = Path(checkpoints) if checkpoints is not None else paths.checkpoints
        self.cache_dir = paths.cache
        self.config = config
        self.engine: SwitchEngine | None = None
        self.table = load_corpus(self.corpus)
        self.source: Source | None = None
        self._build()
        self.load_models()

    # -- layout

    def _build(self) -> None:
        table = self.table
        style = {"description_width": "initial"}

        def dropdown(label: str, options: list) -> widgets.Dropdown:
            return widgets.Dropdown(options=options, description=label, style=style,
                                    layout=widgets.Layout(width="auto"))

        def values(column: str) -> list[int]:
            return sorted(int(v) for v in table[column].unique())

        self.actor = dropdown("actor", values("actor"))
        words = dict(zip(table["statement_id"], table["statement"]))  # any corpus's sentences
        self.statement = dropdown("sentence", [(str(words[s]), s) for s in values("statement_id")])
        self.emotion = dropdown("emotion", [e for e in EMOTIONS if e in set(table["emotion"])])
        self.intensity = dropdown("intensity", [(INTENSITIES.get(i, str(i)), i)
                                                for i in values("intensity")])
        self.repetition = dropdown("repetition", values("repetition"))
        self.upload = widgets.FileUpload(accept=".wav,.flac,.ogg,audio/*", multiple=False,
                                         description="upload a clip")
        self.target = widgets.ToggleButtons(options=list(EMOTIONS), value="angry",
                                            description="target emotion",
                                            style={**style, "button_width": "84px"})
        self.target.add_class("emogan-target")
        self.vocoder = widgets.ToggleButtons(description="path", style=style)
        self._offer_paths(VOCODERS, VOCODERS[0])
        self.vocoder.add_class("emogan-vocoder")
        self.strength = widgets.FloatSlider(value=1.0, min=0.0, max=1.0,
                                            step=self.config.strength_step,
                                            description="strength", continuous_update=False,
                                            readout_format=".1f", style=style)
        self.status = widgets.HTML()
        self.status.add_class("emogan-status")
        self.players = {name: widgets.Audio(format="wav", autoplay=False, loop=False,
                                            layout=widgets.Layout(width="100%"))
                        for name in PLAYERS}
        for name, audio in self.players.items():
            audio.add_class(f"emogan-{name}-audio")
        self.spectrograms = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.spectrograms.add_class("emogan-spectrograms")
        self.probabilities = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.probabilities.add_class("emogan-probabilities")
        self.train_button = widgets.Button(description="Train quick models", icon="cogs",
                                           button_style="warning",
                                           layout=widgets.Layout(width="auto"))
        self.train_log = widgets.Output()
        self.controls = [self.actor, self.statement, self.emotion, self.intensity,
                         self.repetition, self.upload, self.target, self.strength,
                         self.vocoder]

        for control in (self.actor, self.statement, self.emotion, self.intensity,
                        self.repetition):
            control.observe(self._on_corpus_choice, "value")
        self.upload.observe(self._on_upload, "value")
        self.target.observe(self._on_choice, "value")
        self.strength.observe(self._on_choice, "value")
        self.vocoder.observe(self._on_choice, "value")
        self.train_button.on_click(self._on_train)

        players = widgets.HBox([widgets.VBox([widgets.Label(PLAYERS[name]), audio],
                                             layout=widgets.Layout(width="33%",
                                                                   overflow="hidden"))
                                for name, audio in self.players.items()])
        self.switch_panel = widgets.VBox([
            widgets.HBox([self.actor, self.statement], layout=widgets.Layout(flex_flow="wrap")),
            widgets.HBox([self.emotion, self.intensity, self.repetition, self.upload],
                         layout=widgets.Layout(flex_flow="wrap")),
            self.target, self.strength, self.vocoder, self.status, players, self.spectrograms,
            self.probabilities])
        self.train_panel = widgets.VBox([self.train_button, self.train_log])
        self.widget = widgets.VBox([self.status])
        self.widget.add_class("emogan-switch")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # -- models

    def load_models(self) -> bool:
        """Load the checkpoints and show the switch, or say what is missing; True if loaded."""
        self.engine = None
        missing = missing_models(self.checkpoints)
        if missing:
            self.status.value = _message(missing_models_message(missing))
            self.widget.children = [self.status, self.train_panel]
            return False
        try:
            engine = load_engine(self.checkpoints, self.config)
        except CheckpointError as err:
            self.status.value = _message(f"{html.escape(str(err))}. Delete it and train again "
                                         f"(notebooks 03 and 04).", error=True)
            self.widget.children = [self.status]
            return False
        # set while no engine is loaded, so that the change computes nothing
        self._offer_paths(engine.translator.vocoders, engine.translator.vocoder)
        self.engine = engine
        labels = list(self.engine.translator.labels)  # the GAN's emotions, not always RAVDESS's
        if list(self.target.options) != labels:
            self.target.options = labels
            self.target.value = "angry" if "angry" in labels else labels[-1]
        self.widget.children = [self.switch_panel]
        self.refresh()
        return True

    def _offer_paths(self, paths: Sequence[str], value: str) -> None:
        """The path toggle's buttons: ``paths``, ``value`` selected."""
        self.vocoder.options = [(VOCODER_LABELS[v][0], v) for v in paths]
        self.vocoder.tooltips = [VOCODER_LABELS[v][1] for v in paths]
        self.vocoder.value = value

    def _on_train(self, _button: widgets.Button) -> None:
        self.train_button.disabled = True
        self.status.value = _message("Training quick models … (progress below)")
        try:
            with self.train_log:
                train_quick_models(self.corpus, self.checkpoints, self.cache_dir,
                                   self.config.classifier_training, self.config.gan_training,
                                   self.config.converter_training)
        except Exception as err:  # shown in the widget: a callback's traceback would be hidden
            self.status.value = _message(f"Training failed: {html.escape(str(err))}",
                                         error=True)
            return
        finally:
            self.train_button.disabled = False
        self.load_models()

    # -- choices

    def _on_corpus_choice(self, _change: dict) -> None:
        self.source = None
        self.refresh()

    def _on_upload(self, change: dict) -> None:
        if not change["new"]:
            return  # the upload was cleared
        upload = change["new"][0]
        self.load_upload(upload["name"], bytes(upload["content"]))

    def _on_choice(self, _change: dict) -> None:
        self.refresh()

    def load_upload(self, name: str, content: bytes) -> None:
        """Make an uploaded file the source, or show why it cannot be used."""
        try:
            self.source = upload_source(name, content, self.config.max_seconds)
        except AudioError as err:
            self.status.value = _message(html.escape(str(err)), error=True)
            return
        self.refresh()

    def corpus_choice(self) -> Source:
        """The corpus recording the dropdowns select."""
        row = recording(self.table, self.actor.value, self.statement.value, self.emotion.value,
                        self.intensity.value, self.repetition.value)
        return corpus_source(row)

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        """Disable every control while a choice is computed."""
        for control in self.controls:
            control.disabled = True
        try:
            yield
        finally:
            for control in self.controls:
                control.disabled = False

    def refresh(self) -> SwitchResult | None:
        """Compute (or take from the cache) and show the current choice; None if it failed."""
        if self.engine is None:
            return None
        done = self.engine.computed["translation"]
        try:
            with self._busy():
                self.status.value = _message("Translating …")
                if self.source is None:
                    self.source = self.corpus_choice()
                result = self.engine.result(self.source, self.target.value, self.strength.value,
                                            self.vocoder.value)
        except EmoganError as err:
            self.status.value = _message(html.escape(str(err)), error=True)
            return None
        except Exception as err:  # shown in the widget: a callback's traceback would be hidden
            self.status.value = _message(html.escape(f"{type(err).__name__}: {err}"), error=True)
            return None
        self.show(result, cached=self.engine.computed["translation"] == done)
        return result

    def show(self, result: SwitchResult, cached: bool = False) -> None:
        """Put one result into the players, images and status line."""
        for name, player in self.players.items():
            player.value = result.wav[name]
        self.spectrograms.value = result.png["spectrograms"]
        self.probabilities.value = result.png["probabilities"]
        timing = "from the cache" if cached else f"computed in {result.seconds:.2f} s"
        top = max(result.translation_probabilities, key=result.translation_probabilities.get)
        self.status.value = _message(
            f"<b>{html.escape(result.source)}</b> ({result.source_emotion}) \u2192 "
            f"<b>{result.target}</b> at strength {result.strength:g} through {result.vocoder}; "
            f"the classifier hears "
            f"<b>{top}</b> in the translation. <i>{timing}</i>")


def emotion_switch(corpus: str | Path, checkpoints: str | Path | None = None,
                   config: SwitchConfig = SwitchConfig()) -> widgets.VBox:
    """The emotion switch's ipywidgets container (see :class:`EmotionSwitch`)."""
    return EmotionSwitch(corpus, checkpoints, config).widget
