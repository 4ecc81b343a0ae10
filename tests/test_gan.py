"""The conditional GAN: network shapes, training steps, exact resume, translation and its errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import parallel_corpus
from emogan_utils import cli
from emogan_utils.checkpoint import CheckpointError, save_checkpoint
from emogan_utils.data import EMOTIONS, ravdess_name
from emogan_utils.features import AudioConfig, Normalizer
from emogan_utils.gan_training import GANTrainConfig, build_gan, fit_gan, gan_step
from emogan_utils.inference import Translator, translate
from emogan_utils.losses import paired_l1
from emogan_utils.models import (DiscriminatorConfig, GeneratorConfig, PatchDiscriminator,
                                 UNetGenerator)
from emogan_utils.pairs import dtw_alignment, parallel_set
from emogan_utils.prosody import (EmotionProsody, ProsodyShift, apply_prosody, clip_prosody,
                                  remaining_semitones, stretch_mel)
from emogan_utils.runtime import seed_everything
from emogan_utils.world import WorldConfig, analyze, synthesize
from emogan_utils.world import f0_contour as world_f0

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = GANTrainConfig(epochs=2, batch_size=4, pairs_per_epoch=8, crop_frames=16, lr_g=2e-3,
                      lr_d=1e-3, generator=GeneratorConfig(channels=4, depth=2, n_res_blocks=1),
                      discriminator=DiscriminatorConfig(channels=4, depth=2))


@pytest.fixture(scope="module")
def tiny_data():
    table, mels = parallel_corpus()
    normalizer = Normalizer.fit_range(mels)
    return parallel_set(table, mels, normalizer, progress=False), normalizer


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_data):
    path = tmp_path_factory.mktemp("gan") / "gan.pt"
    fit_gan(tiny_data[0], path, tiny_data[1], dataclasses.replace(TINY, epochs=1), progress=False)
    return path


@pytest.mark.parametrize("frames", [50, 188, 301])
def test_generator_and_discriminator_shapes_for_any_length_and_emotion(frames):
    torch.manual_seed(0)
    generator, discriminator = UNetGenerator(), PatchDiscriminator()
    mel = torch.rand(len(EMOTIONS), 80, frames) * 2 - 1
    with torch.no_grad():
        for head in (generator.out.weight, generator.out.bias):
            head.normal_(0, 0.1)  # a trained-looking head, not the identity it starts as
        fake = generator(mel, torch.eye(len(EMOTIONS)))
        patches, logits = discriminator(fake)
    assert fake.shape == mel.shape
    assert fake.min() >= -1.0 and fake.max() <= 1.0
    assert not torch.allclose(fake[0], fake[1])  # the emotion code changes the output
    assert patches.shape[0] == len(EMOTIONS) and patches.shape[1] >= frames // 16
    assert logits.shape == (len(EMOTIONS), len(EMOTIONS))


def test_network_shapes_follow_the_features_and_the_emotions():
    for config in (GeneratorConfig(), DiscriminatorConfig()):
        assert (config.n_mels, config.n_emotions) == (AudioConfig().n_mels, len(EMOTIONS))
    sized = TINY.for_audio(AudioConfig(n_mels=64))
    assert sized.generator.n_mels == sized.discriminator.n_mels == 64
    assert sized.generator.channels == TINY.generator.channels  # only the mel count changes


def test_untrained_generator_is_the_identity():
    mel = torch.rand(2, 80, 77) * 2 - 1
    with torch.no_grad():
        assert torch.equal(UNetGenerator()(mel, torch.eye(8)[:2]), mel)


def test_generator_rejects_mel_bins_that_do_not_divide():
    with pytest.raises(ValueError, match="n_mels=84"):
        UNetGenerator(GeneratorConfig(n_mels=84, depth=3))


def test_dtw_alignment_recovers_a_time_stretch():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(19, 30))
    target = np.repeat(source, 2, axis=1)  # the same sequence, twice as slow
    index = dtw_alignment(source, target)
    assert np.all(index // 2 == np.arange(30))


def test_aligned_target_follows_source_timeline(tiny_data):
    data, _ = tiny_data
    index = torch.arange(3)
    expected = torch.stack([data.mels[data.pairs[k, 1]][:, data.alignment[k]] for k in index])
    assert torch.equal(data.aligned_target(index), expected)
    x, source, target, aligned = data.batch(index, crop=16)
    assert x.shape == aligned.shape == (3, 80, 16)
    assert torch.all(source != target)


@pytest.mark.slow
def test_training_steps_update_both_networks_and_lower_generator_loss(tiny_data):
    data, _ = tiny_data
    seed_everything(0)
    parts = build_gan(TINY, torch.device("cpu"), total_steps=40)
    batch = data.batch(torch.arange(8), crop=None)
    before = [{k: v.clone() for k, v in net.state_dict().items()}
              for net in (parts.generator, parts.discriminator)]
    losses = [gan_step(parts, batch, TINY, None)["loss_g"]]
    for net, old in zip((parts.generator, parts.discriminator), before):
        assert any(not torch.equal(v, old[k]) for k, v in net.state_dict().items())
    losses += [gan_step(parts, batch, TINY, None)["loss_g"] for _ in range(29)]
    # by a fixed margin: the class term (w_cls x ~2.08 at chance) moves little in 30 steps
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.25


def test_cepstral_paired_loss_sees_the_envelope_not_the_harmonics():
    bins = torch.arange(80, dtype=torch.float32)
    target = torch.randn(2, 80, 30)
    ripple = 0.5 * torch.cos(np.pi * 31 * (bins + 0.5) / 80)[None, :, None]  # cepstrum 31
    tilt = torch.linspace(-0.5, 0.5, 80)[None, :, None]
    assert paired_l1(target + ripple, target, None).item() == pytest.approx(1 / np.pi, rel=0.05)
    assert paired_l1(target + ripple, target, 20).item() < 1e-5
    assert paired_l1(target + tilt, target, 20).item() > 0.1
    with pytest.raises(ValueError, match="paired_cepstra must be None or 1..80, got 0"):
        GANTrainConfig(paired_cepstra=0)


@pytest.mark.slow
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_data):
    data, normalizer = tiny_data
    straight, interrupted = tmp_path / "straight.pt", tmp_path / "interrupted.pt"
    full = fit_gan(data, straight, normalizer, TINY, progress=False)
    fit_gan(data, interrupted, normalizer, TINY, stop_after=1, progress=False)
    resumed = fit_gan(data, interrupted, normalizer, TINY, resume=True, progress=False)
    assert resumed == full and len(full["loss_g"]) == TINY.epochs
    a, b = (torch.load(p, weights_only=True)["state"] for p in (straight, interrupted))
    for net in ("generator", "discriminator"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net])


@pytest.mark.slow
def test_resume_refuses_another_configuration_or_audio(tmp_path, tiny_data, tiny_checkpoint):
    data, normalizer = tiny_data
    with pytest.raises(CheckpointError, match="w_paired"):
        fit_gan(data, tiny_checkpoint, normalizer, dataclasses.replace(TINY, w_paired=0.0),
                resume=True, progress=False)
    with pytest.raises(CheckpointError, match="other audio parameters"):
        fit_gan(data, tiny_checkpoint, normalizer, TINY, AudioConfig(n_fft=512), resume=True,
                progress=False)


@pytest.mark.slow
def test_translate_command_writes_audio_as_long_as_the_input(tmp_path, tiny_checkpoint):
    rate, seconds = 22050, 1.3
    t = np.arange(int(rate * seconds)) / rate
    source = tmp_path / "in.wav"
    sf.write(source, 0.3 * np.sin(2 * np.pi * (150 + 50 * t) * t), rate)
    output = tmp_path / "out" / "angry.wav"
    code = cli.main(["translate", "--generator", str(tiny_checkpoint), "--input", str(source),
                     "--to", "angry", "--output", str(output), "--strength", "0.5"])
    assert code == 0
    wave, out_rate = sf.read(output)
    assert out_rate == AudioConfig().sample_rate
    assert abs(len(wave) / out_rate - seconds) < 0.02
    assert np.all(np.isfinite(wave)) and np.abs(wave).max() > 1e-4
    assert cli.main(["translate", "--generator", str(tiny_checkpoint), "--input", str(source),
                     "--to", "angry", "--output", str(source)]) == 2
    assert sf.info(source).samplerate == rate  # the input is untouched


@pytest.mark.slow
def test_train_gan_command_trains_and_resumes(tmp_path, monkeypatch, tiny_corpus, capsys):
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    out = tmp_path / "gan.pt"
    args = ["train-gan", "--data", str(tiny_corpus), "--out", str(out), "--quick",
            "--epochs", "1", "--val-actors", "2", "--cls-weight", "1.5"]
    assert cli.main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["epochs"] == 1 and np.isfinite(report["final"]["loss_g"])
    saved = torch.load(out, weights_only=True)
    assert saved["kind"] == "gan" and saved["extra"]["train_actors"] == [1]
    assert saved["extra"]["train_config"]["w_cls"] == 1.5
    assert cli.main(args + ["--resume"]) == 0  # already finished: nothing left to train
    assert torch.equal(torch.load(out, weights_only=True)["state"]["generator"]["out.weight"],
                       saved["state"]["generator"]["out.weight"])


@pytest.mark.slow
def test_strength_blends_source_and_target_codes(tiny_checkpoint):
    translator = Translator(tiny_checkpoint)
    code = translator.code("angry", strength=0.25, source="sad")[0]
    assert code[EMOTIONS.index("sad")] == 0.75 and code[EMOTIONS.index("angry")] == 0.25
    assert code.sum() == 1.0
    mel = translator.mel(np.sin(np.linspace(0, 4000, 16000)).astype(np.float32))
    unchanged = translator.translate_mel(mel, "sad", strength=1.0, source="sad")
    assert np.array_equal(translator.translate_mel(mel, "angry", 0.0, "sad"), unchanged)
    assert not np.array_equal(translator.translate_mel(mel, "angry", 1.0, "sad"), unchanged)


@pytest.mark.slow
def test_unknown_emotion_lists_the_valid_names(tiny_checkpoint):
    with pytest.raises(ValueError, match="neutral, calm, happy"):
        translate(np.zeros(16000, np.float32), "grumpy", tiny_checkpoint)
    with pytest.raises(ValueError, match="strength"):
        Translator(tiny_checkpoint).code("angry", strength=1.5)


@pytest.mark.slow
def test_mismatched_checkpoints_are_refused(tmp_path, tiny_checkpoint):
    classifier = save_checkpoint(tmp_path / "classifier.pt", kind="classifier", model_config={},
                                 state={}, audio=AudioConfig())
    with pytest.raises(CheckpointError, match="'classifier' checkpoint, expected 'gan'"):
        Translator(classifier)
    with pytest.raises(CheckpointError, match="n_mels: 80 != 64"):
        Translator(tiny_checkpoint, audio=AudioConfig(n_mels=64))


@pytest.mark.slow
def test_evaluate_translation_command_reports_every_target(tmp_path, monkeypatch, tiny_corpus,
                                                           tiny_checkpoint, capsys):
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    take = tiny_corpus / "Actor_01" / ravdess_name(8, 1, 1, 1, 1)  # surprised, actor 1
    take.with_name(ravdess_name(8, 1, 1, 2, 1)).write_bytes(take.read_bytes())  # a second take
    judge = tmp_path / "judge.pt"
    assert cli.main(["train-classifier", "--data", str(tiny_corpus), "--out", str(judge),
                     "--quick", "--epochs", "1", "--actors", "1", "--val-actors", "2"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate-translation", "--generator", str(tiny_checkpoint), "--classifier",
                     str(judge), "--data", str(tiny_corpus), "--actors", "1-2"]) == 0
    def strict(constant):
        raise AssertionError(f"{constant} is not JSON")

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1], parse_constant=strict)
    assert result["source"] == "neutral" and result["n_sources"] == 2
    # the second take is a copy of the first; no other emotion has a second take
    assert result["emotions"]["surprised"]["mcd_target_repeat"] == 0.0
    assert result["emotions"]["angry"]["mcd_target_repeat"] is None
    assert sorted(result["emotions"]) == sorted(e for e in EMOTIONS if e != "neutral")
    for stats in [*result["emotions"].values(), result["mean"]]:
        for name in ("source", "converted", "target", "target_griffin_lim"):
            assert 0.0 <= stats[f"accuracy_{name}_classifier"] <= 1.0
        assert np.isfinite(stats["mcd_converted"]) and stats["mcd_source"] > 0
    # the source is the neutral tone and the target another tone: their MCD is far from zero
    assert result["emotions"]["surprised"]["mcd_source"] > 1.0


@pytest.mark.slow
def test_world_vocoder_converts_pitch_range_and_tempo(tmp_path, tiny_checkpoint):
    saved = torch.load(tiny_checkpoint, weights_only=True)
    offsets = {e: ProsodyShift() for e in EMOTIONS} | {"angry": ProsodyShift(4.0, 1.25, 6.0, 1.5)}
    saved["extra"]["prosody"] = EmotionProsody(offsets, {"angry": 1}).state_dict()
    path = tmp_path / "with_prosody.pt"
    torch.save(saved, path)
    rate = AudioConfig().sample_rate
    t = np.arange(rate) / rate
    f0 = 150.0 * 2 ** (np.sin(2 * np.pi * 2.0 * t) / 12)  # one semitone of slow vibrato
    wave = 0.2 * np.sign(np.sin(2 * np.pi * np.cumsum(f0) / rate)).astype(np.float32)
    world = Translator(path, vocoder="world")
    conversion = world.convert(wave, "angry")
    assert conversion.converted_mel.shape == conversion.source_mel.shape
    assert len(conversion.wave) == round(len(wave) / 1.25)
    assert np.all(np.isfinite(conversion.wave)) and np.abs(conversion.wave).max() <= 1.0
    before = world_f0(wave, rate, WorldConfig())
    after = world_f0(conversion.wave, rate, WorldConfig())
    before, after = (np.log2(c[c > 0]) * 12 for c in (before, after))
    assert np.median(after) - np.median(before) == pytest.approx(4.0, abs=0.5)
    assert np.std(after) / np.std(before) == pytest.approx(1.5, rel=0.2)
    # without prosody, strength 0 from neutral: the vocoder alone, up to the generator's change
    plain = Translator(path, vocoder="world", prosody=False)
    assert len(plain(wave, "angry")) == len(wave)
    np.testing.assert_allclose(plain.resynthesize(wave), synthesize(analyze(wave, rate), len(wave)))
    with pytest.raises(ValueError, match="vocoder"):
        Translator(path, vocoder="wavenet")
    with pytest.raises(ValueError, match="sample_rate must be a positive number"):
        world(wave, "angry", sample_rate=0)
    silent = world.convert(np.zeros(rate // 2, np.float32), "angry").wave
    assert np.all(np.isfinite(silent)) and np.abs(silent).max() < 1e-3
    source = tmp_path / "in.wav"
    sf.write(source, wave, rate)
    assert cli.main(["translate", "--generator", str(path), "--input", str(source), "--to",
                     "angry", "--output", str(tmp_path / "out.wav"), "--vocoder", "world"]) == 0
    np.testing.assert_allclose(sf.read(tmp_path / "out.wav", dtype="float32")[0],
                               conversion.wave, atol=1.5 / 32767)
    # 16-bit PCM: half a step of rounding plus at most one step from the 32767 / 32768 scales


@pytest.mark.slow
def test_translator_applies_the_saved_prosody_unless_told_not_to(tmp_path, tiny_checkpoint):
    saved = torch.load(tiny_checkpoint, weights_only=True)
    offsets = {e: ProsodyShift() for e in EMOTIONS} | {"sad": ProsodyShift(-3.0, 0.8, 6.0),
                                                       "calm": ProsodyShift(-0.5, 1.0, 0.0)}
    saved["extra"]["prosody"] = EmotionProsody(offsets, {"sad": 1}).state_dict()
    path = tmp_path / "with_prosody.pt"
    torch.save(saved, path)
    rate = AudioConfig().sample_rate
    wave = (0.3 * np.sin(2 * np.pi * 220.0 * np.arange(rate) / rate)).astype(np.float32)
    by_griffin_lim = {"vocoder": "griffin-lim"}
    plain = Translator(path, prosody=False, **by_griffin_lim)
    shaped = Translator(path, **by_griffin_lim)
    assert len(plain(wave, "sad")) == len(wave)
    assert len(shaped(wave, "sad")) == pytest.approx(len(wave) / 0.8, rel=0.02)
    assert len(shaped(wave, "sad", strength=0.5)) == pytest.approx(len(wave) / 0.8 ** 0.5, rel=0.02)
    # tempo on the mel before Griffin-Lim, then the pitch change that the generator left
    # undone; the level is the generator's. Each side repeats the same computation on the same
    # thread count, so 1e-6 only absorbs float32 rounding of samples within [-1, 1].
    mel = shaped.translate_mel(shaped.mel(wave), "sad")
    slower = round(len(wave) / 0.8)
    gl = shaped.to_audio(stretch_mel(mel, AudioConfig().frames(slower)), slower)
    left = remaining_semitones(-3.0, *(clip_prosody(w)["semitones"] for w in (wave, gl)))
    np.testing.assert_allclose(shaped.speech(mel, wave, "sad"),
                               apply_prosody(gl, ProsodyShift(left)), atol=1e-6)
    # a shift under min_pitch_shift (1 semitone by default) is skipped
    unshifted = shaped.to_audio(mel, len(wave))
    np.testing.assert_allclose(shaped.speech(mel, wave, "calm"), unshifted, atol=1e-6)
    left = remaining_semitones(-0.5, *(clip_prosody(w)["semitones"] for w in (wave, unshifted)))
    fine = Translator(path, min_pitch_shift=0.25, **by_griffin_lim).speech(mel, wave, "calm")
    expected = ProsodyShift(left if abs(left) >= 0.25 else 0.0)
    np.testing.assert_allclose(fine, apply_prosody(unshifted, expected), atol=1e-6)
    assert Translator(tiny_checkpoint).prosody is None  # made without: the generator alone
    source = tmp_path / "in.wav"
    sf.write(source, wave, rate)
    for flags, seconds in (([], 1.0 / 0.8), (["--no-prosody"], 1.0)):
        assert cli.main(["translate", "--generator", str(path), "--input", str(source), "--to",
                         "sad", "--output", str(tmp_path / "out.wav"), *flags]) == 0
        assert sf.info(tmp_path / "out.wav").duration == pytest.approx(seconds, rel=0.02)
