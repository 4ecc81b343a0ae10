"""The emotion switch, driven in-process: choices, caching, busy state, uploads and errors."""

from __future__ import annotations

import datetime
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emogan_utils.classifier_training import ClassifierTrainConfig
from emogan_utils.converter_training import ConverterTrainConfig
from emogan_utils.data import EMOTIONS, ravdess_name
from emogan_utils.features import AudioConfig, AudioError
from emogan_utils.gan_training import GANTrainConfig
from emogan_utils.models import ClassifierConfig, DiscriminatorConfig, GeneratorConfig
from emogan_utils.plots import plot_mel_comparison, plot_probability_comparison
from emogan_utils.train import train_quick_models
from emogan_utils.widgets import EmotionSwitch, SwitchConfig, emotion_switch, upload_source

RATE = 16000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = SwitchConfig(
    classifier_training=ClassifierTrainConfig.quick(
        epochs=1, batch_size=8, model=ClassifierConfig(channels=8, n_blocks=1)),
    gan_training=GANTrainConfig.quick(
        epochs=1, pairs_per_epoch=8, batch_size=4, crop_frames=16,
        generator=GeneratorConfig(channels=4, depth=2, n_res_blocks=1),
        discriminator=DiscriminatorConfig(channels=4, depth=2)),
    converter_training=ConverterTrainConfig.quick(epochs=1, batch_size=4))


def harmonic(f0: float, seconds: float, rate: int = RATE) -> np.ndarray:
    """A buzzy tone (three harmonics) standing in for a voiced utterance."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three actors (the classifier holds two out) x 8 emotions, one statement, RAVDESS names."""
    root = tmp_path_factory.mktemp("corpus")
    for actor in (1, 2, 3):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir()
        for emotion in range(1, 9):
            sf.write(folder / ravdess_name(emotion, 1, 1, 1, actor),
                     harmonic(100 + 20 * emotion + 5 * actor, 1.5), RATE)
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, corpus) -> Path:
    """Tiny classifier, GAN and converter checkpoints made by the widget's own quick-training
    path."""
    folder = tmp_path_factory.mktemp("checkpoints")
    made = train_quick_models(corpus, folder, None, TINY.classifier_training, TINY.gan_training,
                              TINY.converter_training, progress=False)
    assert sorted(p.name for p in made) == ["classifier.pt", "converter.pt", "gan.pt"]
    return folder


@pytest.fixture
def switch(corpus, checkpoints) -> EmotionSwitch:
    return EmotionSwitch(corpus, checkpoints, TINY)


def upload_value(name: str, content: bytes) -> tuple[dict, ...]:
    """What ipywidgets' FileUpload holds after the browser sends one file."""
    return ({"name": name, "type": "audio/wav", "size": len(content),
             "content": memoryview(content),
             "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)


def wav(content: bytes) -> tuple[np.ndarray, int]:
    wave, rate = sf.read(io.BytesIO(content), dtype="float32")
    return wave, rate


@pytest.mark.slow
def test_first_choice_shows_players_spectrograms_and_probabilities(switch, corpus):
    assert switch.engine is not None
    original, rate = wav(switch.players["original"].value)
    reconstruction, _ = wav(switch.players["reconstruction"].value)
    translation, _ = wav(switch.players["translation"].value)
    assert rate == RATE
    assert len(original) == len(reconstruction) == len(translation) == int(1.5 * RATE)
    assert np.abs(translation).max() > 0.0
    assert bytes(switch.spectrograms.value).startswith(PNG_SIGNATURE)
    assert bytes(switch.probabilities.value).startswith(PNG_SIGNATURE)
    assert "angry" in switch.status.value and "computed in" in switch.status.value


@pytest.mark.slow
def test_every_choice_is_computed_once(switch):
    computed = switch.engine.computed
    assert computed == {"analysis": 1, "translation": 1}
    switch.target.value = "happy"
    first = bytes(switch.players["translation"].value)
    switch.target.value = "sad"
    assert computed["translation"] == 3
    assert bytes(switch.players["translation"].value) != first
    switch.target.value = "happy"
    assert computed["translation"] == 3, "a choice made before was computed again"
    assert bytes(switch.players["translation"].value) == first
    assert "from the cache" in switch.status.value
    switch.strength.value = 0.5
    assert computed["translation"] == 4
    switch.emotion.value = "calm"  # another source clip: analysed once, then translated
    assert computed == {"analysis": 2, "translation": 5}


@pytest.mark.slow
def test_the_vocoder_toggle_switches_reconstruction_and_translation(switch):
    computed = switch.engine.computed
    first = switch.vocoder.value
    # the GAN's other vocoder: the contours path plays through WORLD too, so its reconstruction
    # is WORLD's (its translation differs: the next test)
    other = next(v for v in ("griffin-lim", "world") if v != first)
    before = {name: bytes(switch.players[name].value) for name in ("reconstruction", "translation")}
    switch.vocoder.value = other
    assert computed == {"analysis": 2, "translation": 2}
    assert f"through {other}" in switch.status.value
    after = {name: bytes(switch.players[name].value) for name in before}
    assert all(after[name] != before[name] for name in after)
    original, _ = wav(switch.players["original"].value)
    reconstruction, _ = wav(switch.players["reconstruction"].value)
    assert len(reconstruction) == len(original)
    switch.vocoder.value = first  # both choices are cached
    assert computed == {"analysis": 2, "translation": 2}
    assert bytes(switch.players["translation"].value) == before["translation"]
    with pytest.raises(ValueError, match="vocoder"):
        switch.engine.result(switch.source, "sad", 1.0, "wavenet")


@pytest.mark.slow
def test_the_contours_path_is_offered_and_converts_otherwise_than_the_gan(switch):
    assert switch.engine.translator.vocoders == ("contours", "world", "griffin-lim")
    assert [value for _, value in switch.vocoder.options] == ["contours", "world", "griffin-lim"]
    source = switch.source
    contours, world = (switch.engine.result(source, "sad", 1.0, v) for v in ("contours", "world"))
    np.testing.assert_array_equal(contours.reconstruction, world.reconstruction)  # both WORLD
    assert contours.translation.shape != world.translation.shape or \
        not np.allclose(contours.translation, world.translation)


@pytest.mark.slow
def test_each_choice_uses_its_own_vocoder_whatever_was_analysed_last(switch):
    engine = switch.engine
    first = switch.source
    engine.analyse(first, "world")
    switch.emotion.value = "calm"  # another clip, analysed through Griffin-Lim last
    result = engine.result(first, "sad", 1.0, "world")  # its analysis comes from the cache
    analysis = engine.analyse(first, "world")
    expected = engine.translator.convert(analysis.wave, "sad", 1.0, analysis.emotion,
                                         analysis.mel_db, vocoder="world").wave
    np.testing.assert_array_equal(result.translation, expected)


@pytest.mark.slow
def test_controls_are_disabled_while_computing(switch):
    seen = []
    switch.target.observe(lambda change: seen.append(change["new"]), "disabled")
    switch.target.value = "fearful"
    assert seen == [True, False]
    assert not any(control.disabled for control in switch.controls)


@pytest.mark.slow
def test_an_upload_is_translated_and_its_emotion_guessed(switch):
    stereo_22k = np.stack([harmonic(180, 2.0, 22050)] * 2, axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, stereo_22k, 22050, format="WAV")
    switch.upload.value = upload_value("mine.wav", buffer.getvalue())
    assert switch.source.key.startswith("upload:")
    assert "mine.wav" in switch.status.value
    translation, rate = wav(switch.players["translation"].value)
    assert rate == RATE and len(translation) == 2 * RATE
    assert any(f"({emotion})" in switch.status.value for emotion in EMOTIONS)


@pytest.mark.slow
def test_a_corrupt_upload_shows_a_message_and_the_switch_keeps_working(switch):
    before = bytes(switch.players["translation"].value)
    switch.upload.value = upload_value("broken.wav", b"RIFF\x00\x01 not really a wave file")
    assert "broken.wav" in switch.status.value and "cannot read" in switch.status.value
    assert bytes(switch.players["translation"].value) == before
    switch.target.value = "disgust"
    assert "disgust" in switch.status.value and "#b00020" not in switch.status.value


@pytest.mark.parametrize("content, problem", [(b"", "cannot read"),
                                              (b"RIFF????WAVEfmt ", "cannot read")])
def test_upload_source_names_the_file_and_the_problem(content, problem):
    with pytest.raises(AudioError, match=f"clip.wav: {problem}"):
        upload_source("clip.wav", content, max_seconds=8.0)


def test_uploads_are_cut_to_the_interactive_length():
    buffer = io.BytesIO()
    sf.write(buffer, harmonic(150, 5.0), RATE, format="WAV")
    source = upload_source("long.wav", buffer.getvalue(), max_seconds=2.0)
    assert len(source.wave) == 2 * RATE and source.emotion is None


@pytest.mark.slow
def test_the_engine_works_without_ipywidgets(checkpoints):
    # A fresh interpreter where importing ipywidgets fails: the engine must neither import it
    # (directly or through another module) nor need it to compute and render a choice.
    program = (
        "import io, sys\n"
        "sys.modules['ipywidgets'] = None  # any import of it now raises ImportError\n"
        "import numpy as np, soundfile as sf\n"
        "from pathlib import Path\n"
        "from emogan_utils.switch import SwitchConfig, load_engine, upload_source\n"
        "t = np.arange(16000) / 16000\n"
        "buffer = io.BytesIO()\n"
        "sf.write(buffer, 0.2 * np.sin(2 * np.pi * 150 * t), 16000, format='WAV')\n"
        "engine = load_engine(Path(sys.argv[1]), SwitchConfig(vocoder='griffin-lim'))\n"
        "source = upload_source('clip.wav', buffer.getvalue(), max_seconds=8.0)\n"
        "result = engine.result(source, 'angry', 1.0)\n"
        "assert result.wav['translation'][:4] == b'RIFF', result.wav.keys()\n"
        "assert result.png['spectrograms'][:4] == b'\\x89PNG'\n"
        "assert sys.modules['ipywidgets'] is None\n")
    done = subprocess.run([sys.executable, "-c", program, str(checkpoints)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_missing_checkpoints_explain_and_the_button_trains_what_is_missing(
        tmp_path, corpus, checkpoints):
    switch = EmotionSwitch(corpus, tmp_path, TINY)
    assert switch.engine is None
    assert "notebook 03" in switch.status.value and "notebook 04" in switch.status.value
    assert switch.train_button in switch.widget.children[-1].children
    shutil.copy(checkpoints / "classifier.pt", tmp_path / "classifier.pt")
    before = (tmp_path / "classifier.pt").stat().st_mtime_ns
    switch.train_button.click()
    assert (tmp_path / "gan.pt").is_file()
    assert (tmp_path / "classifier.pt").stat().st_mtime_ns == before, "retrained a present model"
    assert switch.engine is not None and switch.players["translation"].value


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_reported_in_the_widget(tmp_path, corpus, checkpoints):
    for name in ("classifier.pt", "converter.pt"):
        shutil.copy(checkpoints / name, tmp_path / name)
    (tmp_path / "gan.pt").write_bytes(b"not a checkpoint")
    box = emotion_switch(corpus, tmp_path, TINY)
    status = box.children[0].value
    assert "gan.pt" in status and "not a readable emogan checkpoint" in status


@pytest.mark.slow
def test_a_missing_corpus_recording_is_a_message(switch):
    switch.intensity.options = [("normal", 1), ("strong", 2)]
    switch.emotion.value = "happy"
    switch.intensity.value = 2  # the tiny corpus has normal intensity only
    assert "no recording" in switch.status.value and "#b00020" in switch.status.value


def test_mel_comparison_shares_one_colour_scale():
    quiet = np.full((80, 50), -60.0)
    loud = np.full((80, 50), -10.0)
    fig = plot_mel_comparison({"quiet": quiet, "loud": loud}, AudioConfig())
    panels = fig.axes[:2]  # then the colour bar
    assert [ax.get_title() for ax in panels] == ["quiet", "loud"]
    limits = [ax.collections[0].get_clim() for ax in panels]
    assert limits == [(-90.0, -10.0)] * 2


def test_probability_comparison_draws_one_panel_per_clip():
    probs = dict(zip(EMOTIONS, np.eye(8)[4]))
    fig = plot_probability_comparison({"original": probs, "translation": probs})
    assert [ax.get_title() for ax in fig.axes] == ["original", "translation"]
    assert all(len(ax.patches) == 8 for ax in fig.axes)
