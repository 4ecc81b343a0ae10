"""Plots: the right axes, titles, labels and colour scales, and PNGs written atomically."""

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest

from conftest import tone
from emogan_utils import plots
from emogan_utils.data import EMOTIONS, CorpusError, emotion_clips, load_corpus
from emogan_utils.features import AudioConfig, Normalizer, extract_features, log_mel, speech_mask
from emogan_utils.models import DiscriminatorConfig, GeneratorConfig

CFG = AudioConfig(duration=1.5)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def clip():
    wave = tone(300.0, 1.0, CFG.sample_rate, lead=0.2)
    return wave, log_mel(wave, CFG)


@pytest.fixture
def table(tiny_corpus):
    return load_corpus(tiny_corpus)


def test_save_figure_writes_png_into_env_folder(tmp_path, monkeypatch, clip):
    monkeypatch.setenv("EMOGAN_FIGURES", str(tmp_path / "figs"))
    path = plots.save_figure(plots.plot_waveform(clip[0], CFG.sample_rate), "wave")
    assert path == tmp_path / "figs" / "wave.png"
    assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == ["wave.png"]  # no temporary files left


def test_save_figure_to_folder_and_failure_leaves_nothing(tmp_path, monkeypatch, clip):
    fig = plots.plot_mel(clip[1], CFG)
    assert plots.save_figure(fig, "mel.png", folder=tmp_path).read_bytes().startswith(PNG_MAGIC)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        plots.save_figure(fig, "other.png", folder=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mel.png"]


def test_plot_waveform_axes_and_time_range(clip):
    wave, _ = clip
    fig = plots.plot_waveform(wave, CFG.sample_rate, title="a tone")
    (ax,) = fig.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("a tone", "time (s)", "amplitude")
    assert ax.get_xlim() == pytest.approx((0.0, len(wave) / CFG.sample_rate))


def test_plot_mel_labels_frequency_range_and_db_scale(clip):
    mel = clip[1]
    fig = plots.plot_mel(mel, CFG, title="mel")
    ax, bar = fig.axes
    labels = (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())
    assert labels == ("mel", "time (s)", "frequency (Hz)")
    low, high = ax.get_ylim()  # mel bin edges: about f_min to f_max in Hz
    assert ax.get_yscale() == "symlog"
    assert low <= CFG.f_min + 50 and CFG.f_max <= high < 1.05 * CFG.f_max
    assert bar.get_ylabel() == "power (dB)"
    low, high = ax.collections[0].get_clim()
    assert high == pytest.approx(mel.max()) and high - low == pytest.approx(plots.DISPLAY_RANGE_DB)


def test_plot_mel_into_given_axes_without_colorbar(clip):
    fig, ax = plt.subplots()
    assert plots.plot_mel(clip[1], CFG, ax=ax, colorbar=False, vmin=-50, vmax=0) is fig
    assert len(fig.axes) == 1 and ax.collections[0].get_clim() == (-50, 0)


def test_waveform_and_mel_share_one_time_axis(clip):
    wave, mel = clip
    fig = plots.plot_waveform_and_mel(wave, mel, CFG, "one clip")
    ax_wave, ax_mel, bar = fig.axes
    assert fig.get_suptitle() == "one clip"
    duration = len(wave) / CFG.sample_rate
    assert ax_mel.get_xlim() == ax_wave.get_xlim() == pytest.approx((0.0, duration))
    assert ax_mel.get_xlabel() == "time (s)" and ax_mel.get_ylabel() == "frequency (Hz)"
    assert bar.get_ylabel() == "power (dB)"


def test_emotion_clips_picks_one_row_per_emotion(table):
    clips = emotion_clips(table, actor=2, statement_id=1, intensity=1)
    assert list(clips.emotion) == list(EMOTIONS) and set(clips.actor) == {2}
    with pytest.raises(CorpusError, match="actor 2, statement 1, calm \\(strong\\)"):
        emotion_clips(table, actor=2, statement_id=1, intensity=2)


def test_emotion_grid_has_eight_panels_on_one_colour_scale(table):
    fig = plots.plot_emotion_grid(table, actor=1, statement_id=1, config=CFG, intensity=1)
    images = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in images] == [f"{e}{'' if e == 'neutral' else ' (normal)'}"
                                                for e in EMOTIONS]
    assert len({ax.collections[0].get_clim() for ax in images}) == 1
    # tiny_corpus says emotion k as a 150·k Hz tone: each panel's loudest band must rise
    images_db = [np.asarray(ax.collections[0].get_array()).reshape(CFG.n_mels, -1) for ax in images]
    loudest = [image.max(axis=1).argmax() for image in images_db]
    assert loudest == sorted(set(loudest))
    assert len(fig.axes) == 9 and fig.axes[-1].get_ylabel() == "power (dB)"
    assert 'Actor 1 (male): "Kids are talking by the door"' in fig.get_suptitle()


def test_emotion_grid_from_features_matches_loading_and_normalises(table, tmp_path):
    features = extract_features(list(table.path), CFG, tmp_path / "cache", progress=False)
    loaded = plots.plot_emotion_grid(table, 2, 1, CFG, intensity=1)
    cached = plots.plot_emotion_grid(table, 2, 1, CFG, intensity=1, features=features)
    for a, b in zip(loaded.axes[:8], cached.axes[:8]):
        np.testing.assert_allclose(a.collections[0].get_array(), b.collections[0].get_array(),
                                   atol=1e-3)
    norm = Normalizer(np.array([-40.0]), np.array([20.0]))
    normed = plots.plot_emotion_grid(table, 2, 1, CFG, intensity=1, features=features,
                                     normalizer=norm)
    assert normed.axes[-1].get_ylabel() == "normalised value"
    np.testing.assert_allclose(normed.axes[3].collections[0].get_array(),
                               (cached.axes[3].collections[0].get_array() + 40.0) / 20.0, atol=1e-4)


def test_speech_mask_and_clip_means_ignore_padding():
    raw = np.full((2, 3, 4), -100.0)
    raw[0, :, :2] = -20.0
    raw[1, :, :] = -40.0
    mask = speech_mask(raw)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]
    np.testing.assert_allclose(plots.clip_means(raw, mask), [-20.0, -40.0])


def test_explained_variance_is_one_for_pure_groups_and_zero_for_equal_means():
    labels = np.array([0, 0, 1, 1])
    assert plots.explained_variance(np.array([1.0, 1.0, 5.0, 5.0]), labels) == pytest.approx(1.0)
    assert plots.explained_variance(np.array([1.0, 3.0, 3.0, 1.0]), labels) == pytest.approx(0.0)


def test_plot_normalisation_histograms_only_speech_frames():
    rng = np.random.default_rng(0)
    raw = rng.normal(-40.0, 10.0, (3, 80, 20))
    raw[:, :, 15:] = -100.0  # padding
    fig = plots.plot_normalisation(raw, {"global standard": (raw + 40.0) / 10.0})
    raw_ax, std_ax = fig.axes
    assert raw_ax.get_title().startswith("raw log-mel (dB)\n")
    mean, std = map(float, re.search(r"mean (\S+), std (\S+),", std_ax.get_title()).groups())
    assert std_ax.get_title().startswith("global standard\n")
    assert (mean, std) == pytest.approx((0.0, 1.0), abs=0.02)
    assert (raw_ax.get_xlabel(), std_ax.get_xlabel()) == ("dB", "normalised value")
    area = sum(patch.get_height() * patch.get_width() for patch in std_ax.patches)
    assert area == pytest.approx(1.0)
    assert std_ax.dataLim.x0 > -7  # the padding (-6 after scaling) is not in the histogram


def test_loudness_by_emotion_reports_explained_variance():
    labels = np.repeat(np.arange(8), 2)
    raw = np.repeat(np.linspace(-60, -30, 8), 2)[:, None, None] + np.zeros((16, 4, 6))
    raw[0, 0, 0] += 1.0  # keeps min-max defined
    minmax = np.full_like(raw, 128.0)
    minmax[::2] = 100.0
    fig = plots.plot_loudness_by_emotion(labels, raw, minmax)
    db_ax, mm_ax = fig.axes
    assert "explains 100% " in db_ax.get_title() and "explains 0% " in mm_ax.get_title()
    assert [t.get_text() for t in db_ax.get_xticklabels()] == list(EMOTIONS)


def test_gan_stages_follow_the_configs():
    generator = GeneratorConfig(channels=8, depth=4, n_res_blocks=2)
    discriminator = DiscriminatorConfig(channels=4, depth=3)
    stages = plots.gan_stages(generator, discriminator, frames=50)
    encoder = dict(stages["encoder"])
    assert list(encoder) == ["log-mel + emotion maps", "stem", "down 1", "down 2", "down 3"]
    assert encoder["log-mel + emotion maps"] == (1 + len(EMOTIONS), 80, 64)  # padded to 16s
    assert [encoder[f"down {k}"] for k in (1, 2, 3)] == [(16, 20, 16), (32, 10, 8), (64, 5, 4)]
    assert dict(stages["bottleneck"]) == {"emotion injection": (64, 5, 4),
                                          "2 conditional res blocks": (64, 5, 4)}
    decoder = dict(stages["decoder"])
    assert [decoder[f"up {k}"] for k in (1, 2, 3)] == [(32, 10, 8), (16, 20, 16), (8, 40, 32)]
    assert decoder["head"] == (4, 80, 64) and decoder["output"] == (1, 80, 64)
    disc = dict(stages["discriminator"])
    assert [disc[f"conv {k}"] for k in (1, 2, 3)] == [(4, 40, 25), (8, 20, 12), (16, 10, 6)]
    assert disc["real/fake per patch"] == (1, 10, 6)
    assert disc["emotion per patch"] == (len(EMOTIONS), 10, 6)


def test_gan_architecture_figure_shows_every_stage_with_its_shape():
    stages = plots.gan_stages()
    fig = plots.plot_gan_architecture()
    generator, discriminator = fig.axes
    boxes = {t.get_text() for ax in fig.axes for t in ax.texts if t.get_text()}
    assert boxes == {f"{name}\n{plots.shape_text(shape)}"
                     for part in stages.values() for name, shape in part}
    # arrows: the path through the UNet's 10 stages, 2 skips and the source; the
    # discriminator's 5 stages and its 2 heads
    assert [sum(not t.get_text() for t in ax.texts) for ax in (generator, discriminator)] == [
        9 + 2 + 1, 4 + 2]


def test_emotion_timeline_plots_each_window_at_its_centre_over_the_true_spans():
    windows = [{"start": 0.0, "end": 3.0, "probabilities": {"neutral": 0.7, "angry": 0.3}},
               {"start": 1.5, "end": 4.5, "probabilities": {"neutral": 0.4, "angry": 0.6}},
               {"start": 5.0, "end": 6.0, "probabilities": {"neutral": 0.1, "angry": 0.9}}]
    table = plots.timeline_table(windows)
    assert table.index.tolist() == [1.5, 3.0, 5.5] and list(table.columns) == ["neutral", "angry"]
    fig = plots.plot_emotion_timeline(windows, truth=[(0.0, 3.0, "neutral"),
                                                      (3.0, 6.0, "angry")])
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["neutral", "angry"]
    assert lines["angry"].get_xdata().tolist() == [1.5, 3.0, 5.5]
    assert lines["angry"].get_ydata().tolist() == [0.3, 0.6, 0.9]
    spans = [p.get_bbox() for p in ax.patches]
    assert [(box.x0, box.x1) for box in spans] == [(0.0, 3.0), (3.0, 6.0)]
    assert [t.get_text() for t in ax.texts] == ["neutral", "angry"]
    assert ax.get_ylim() == (0.0, 1.0) and ax.get_xlabel() == "time (s)"
    with pytest.raises(ValueError, match="no windows"):
        plots.timeline_table([])
