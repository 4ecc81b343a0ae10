"""Hostile input and interrupted work: absurd headers and lengths, damaged caches and
checkpoints, resumes with other data, duplicate and looping corpora, bad output paths, Ctrl-C."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import threading
import time
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from emogan_utils import classifier_training, cli, evaluate, gan_training, storage
from emogan_utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from emogan_utils.classifier_training import (ClassifierTrainConfig, TrainedClassifier,
                                              save_classifier, train_classifier)
from emogan_utils.data import load_corpus, ravdess_name, write_manifest
from emogan_utils.features import (MAX_SAMPLE_RATE, MAX_SECONDS, MIN_SAMPLE_RATE, AudioConfig,
                                   AudioError, FeatureCache, Normalizer, NoSpeechError,
                                   extract_features, load_audio, prepare_waveform, read_audio)
from emogan_utils.gan_training import GANTrainConfig, train_gan
from emogan_utils.inference import Translator, load_classifier, predict
from emogan_utils.losses import DivergedError
from emogan_utils.models import (ClassifierConfig, DiscriminatorConfig, EmotionClassifier,
                                 GeneratorConfig, UNetGenerator)
from emogan_utils.world import EnvelopeEdit, WorldFrames, mel_gain_to_envelope

from conftest import tone

CFG = AudioConfig()
SMALL = ClassifierConfig(channels=16, n_blocks=1, attention_dim=8)
ONE_EPOCH = ClassifierTrainConfig.quick(epochs=1, batch_size=8, progress=False, model=SMALL)
TINY_GAN = GANTrainConfig(epochs=2, batch_size=4, pairs_per_epoch=8, crop_frames=16,
                          generator=GeneratorConfig(channels=4, depth=2, n_res_blocks=1),
                          discriminator=DiscriminatorConfig(channels=4, depth=2))


def wav_header(rate: int, frames: int, bits: int = 16, channels: int = 1,
               payload: bytes = b"\0" * 2000) -> bytes:
    """A PCM WAV file whose header claims ``frames`` frames at ``rate`` Hz, whatever follows."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data"
            + struct.pack("<I", (frames * block) & 0xFFFFFFFF) + payload)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def flac_claiming(path: Path, rate: int, channels: int, frames: int) -> Path:
    """A tiny FLAC whose STREAMINFO says ``frames`` frames of ``channels`` channels at ``rate``."""
    sf.write(path, np.zeros(1600, np.float32), 16000, format="FLAC")
    data = bytearray(path.read_bytes())
    # after "fLaC" and a 4-byte block header, STREAMINFO bytes 10-17 hold 20 bits of sample
    # rate, 3 of channels - 1, 5 of bits per sample - 1 and 36 of total samples
    bits = int.from_bytes(data[18:26], "big")
    bits = (rate << 44) | ((channels - 1) << 41) | (((bits >> 36) & 0x1F) << 36) | frames
    data[18:26] = bits.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def quickly(function, *args, seconds: float = 20.0, **kwargs):
    """``function(*args, **kwargs)`` in a daemon thread; fail if it takes over ``seconds``."""
    result: dict = {}

    def run():
        try:
            result["value"] = function(*args, **kwargs)
        except BaseException as err:  # handed to the test below
            result["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{function.__name__} ran past {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture(scope="module")
def classifier_path(tmp_path_factory) -> Path:
    """An untrained small classifier checkpoint."""
    torch.manual_seed(0)
    normalizer = Normalizer(np.full(80, -50.0, np.float32), np.full(80, 20.0, np.float32))
    trained = TrainedClassifier(EmotionClassifier(SMALL).eval(), normalizer,
                                dataclasses.replace(ONE_EPOCH, norm_mode="global"),
                                {"epoch": [1]}, (1,), (2,))
    return save_classifier(tmp_path_factory.mktemp("clf") / "classifier.pt", trained)


@pytest.fixture(scope="module")
def generator_path(tmp_path_factory) -> Path:
    """An untrained tiny GAN checkpoint (generator only, no prosody)."""
    torch.manual_seed(0)
    generator = UNetGenerator(TINY_GAN.generator)
    return save_checkpoint(
        tmp_path_factory.mktemp("gan") / "gan.pt", kind="gan",
        model_config={"generator": asdict(TINY_GAN.generator),
                      "discriminator": asdict(TINY_GAN.discriminator)},
        state={"generator": generator.state_dict()}, audio=CFG,
        normalizer=Normalizer(np.array([-50.0]), np.array([50.0]), clip=True))


# --- absurd headers and lengths -------------------------------------------------------------

@pytest.mark.parametrize("rate", [1, 3999, 384_001, 10_000_000])
def test_a_header_with_an_absurd_rate_is_refused_before_decoding(tmp_path, rate):
    path = tmp_path / "odd.wav"
    path.write_bytes(wav_header(rate, 1000))
    with pytest.raises(AudioError, match=rf"odd\.wav: sample rate {rate} Hz is outside"):
        quickly(load_audio, path, CFG, seconds=5)


def test_a_flac_claiming_2_31_frames_is_refused_before_anything_is_allocated(tmp_path):
    path = flac_claiming(tmp_path / "huge.flac", 16000, 1, 2 ** 31)
    assert sf.info(path).frames == 2 ** 31  # libsndfile believes it: reading would take 4 GB
    with pytest.raises(AudioError, match=r"huge\.flac: 134218 s of audio is longer than"):
        quickly(read_audio, path, seconds=5)


def test_many_channels_cannot_claim_more_samples_than_accepted(tmp_path):
    path = flac_claiming(tmp_path / "wide.flac", 384_000, 8, 2 ** 23)  # 22 s, 8 channels
    with pytest.raises(AudioError, match=r"wide\.flac: 8388608 samples x 8 channels exceed"):
        quickly(read_audio, path, seconds=5)


def test_a_wav_claiming_2_31_frames_reads_only_what_is_there(tmp_path):
    path = tmp_path / "liar.wav"
    path.write_bytes(wav_header(16000, 2 ** 31, bits=8))
    wave, rate = quickly(read_audio, path, seconds=5)
    assert rate == 16000 and wave.size == 2000  # libsndfile trusts the file's size


def test_the_longest_accepted_clip_loads_and_one_second_more_is_refused(tmp_path):
    rate = MIN_SAMPLE_RATE
    longest = tmp_path / "longest.flac"
    sf.write(longest, np.zeros(int(MAX_SECONDS * rate), np.float32), rate)
    assert quickly(read_audio, longest)[0].size == MAX_SECONDS * rate
    too_long = tmp_path / "too_long.flac"
    sf.write(too_long, np.zeros(int((MAX_SECONDS + 1) * rate), np.float32), rate)
    with pytest.raises(AudioError, match=rf"too_long\.flac: 301 s of audio is longer than the "
                                         rf"{MAX_SECONDS:.0f} s accepted"):
        read_audio(too_long)


def test_in_memory_waveforms_get_the_same_bounds():
    with pytest.raises(AudioError, match="waveform: sample rate 1 Hz is outside"):
        prepare_waveform(np.zeros(1000, np.float32), 1)
    with pytest.raises(AudioError, match="sample rate 10000000 Hz is outside"):
        prepare_waveform(np.zeros(1000, np.float32), 10_000_000)
    with pytest.raises(AudioError, match="longer than"):
        prepare_waveform(np.zeros(int(MAX_SECONDS * 4000) + 4000, np.float32), 4000)
    for rate in (0, -16000, float("nan")):
        with pytest.raises(ValueError, match="sample_rate must be a positive number"):
            prepare_waveform(tone(200, 1.0, 16000), rate)
    assert prepare_waveform(tone(200, 1.0, MAX_SAMPLE_RATE), MAX_SAMPLE_RATE).shape == (48000,)


def test_a_one_sample_file_is_refused_naming_the_file(tmp_path, generator_path, capsys):
    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.5], np.float32), 16000)
    with pytest.raises(AudioError, match=r"one\.wav: 1 samples at 16000 Hz is too short"):
        load_audio(path, CFG)
    assert cli.main(["translate", "--generator", str(generator_path), "--input", str(path),
                     "--to", "angry", "--output", str(tmp_path / "out.wav")]) == 2
    assert "one.wav: 1 samples at 16000 Hz is too short" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_inside_valid_audio_is_refused(tmp_path, bad):
    wave = tone(220, 1.0, 16000)
    wave[8000] = bad
    path = tmp_path / "spoiled.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"spoiled\.wav: audio contains NaN or infinite"):
        load_audio(path, CFG)
    with pytest.raises(AudioError, match="NaN/infinite"):
        prepare_waveform(wave, 16000)


# --- what predict is given ----------------------------------------------------------------------

def test_integer_pcm_is_scaled_as_soundfile_reads_it(classifier_path):
    speech = tone(220, 1.0, 16000, lead=0.2)
    pcm16 = np.round(speech * 32767).astype(np.int16)
    as_float = pcm16.astype(np.float32) / 32768  # exact: a power-of-two scale
    assert np.array_equal(prepare_waveform(pcm16, 16000), prepare_waveform(as_float, 16000))
    assert predict(pcm16, classifier_path, 16000) == predict(as_float, classifier_path, 16000)
    pcm32 = pcm16.astype(np.int32) << 16
    assert np.array_equal(prepare_waveform(pcm32, 16000), prepare_waveform(as_float, 16000))
    unsigned = (pcm16 // 256 + 128).astype(np.uint8)  # 8-bit WAV: centred on 128
    assert np.array_equal(prepare_waveform(unsigned, 16000),
                          prepare_waveform((unsigned.astype(np.float32) - 128) / 128, 16000))
    with pytest.raises(ValueError, match="dtype int64"):
        prepare_waveform(pcm16.astype(np.int64), 16000)
    with pytest.raises(ValueError, match="sample_rate must be a positive number"):
        predict(as_float, classifier_path, sample_rate=0)


def test_silence_and_clicks_are_not_speech(classifier_path, tmp_path):
    with pytest.raises(NoSpeechError, match="waveform: no speech found"):
        predict(np.zeros(16000, np.float32), classifier_path, 16000)
    click = np.zeros(16000, np.float32)
    click[8000:8400] = 0.5  # 25 ms: shorter than a syllable
    with pytest.raises(NoSpeechError, match="no speech found"):
        predict(click, classifier_path, 16000)
    hum = tone(220, 1.0, 16000, amplitude=1e-4)  # -80 dBFS
    silent = tmp_path / "silent.wav"
    sf.write(silent, hum, 16000, subtype="FLOAT")
    with pytest.raises(NoSpeechError, match=r"silent\.wav: no speech found"):
        predict(silent, classifier_path)
    probs = predict(tone(220, 0.3, 16000), classifier_path, 16000)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)  # float32 softmax


# --- the feature cache ----------------------------------------------------------------------

def test_a_shard_edited_in_place_is_detected_warned_about_and_recomputed(tiny_corpus, tmp_path):
    paths = list(load_corpus(tiny_corpus).path)
    first = extract_features(paths, CFG, tmp_path, progress=False)
    cache = FeatureCache(tmp_path, CFG)
    shard = cache.shard([cache.identity(p) for p in paths])
    edited = np.load(shard)
    edited[3] += 30.0
    edited[5, :, 10:20] = np.nan
    np.save(shard, edited)
    with pytest.warns(UserWarning, match="do not match their checksums"):
        again = extract_features(paths[2:7], CFG, tmp_path, progress=False)
    assert np.array_equal(again, first[2:7])
    assert np.array_equal(extract_features(paths, CFG, tmp_path, progress=False), first)


def test_prune_sweeps_old_shards_without_index_and_temporary_files(tmp_path):
    cache = FeatureCache(tmp_path, CFG)
    cache.dir.mkdir(parents=True)
    orphan, fresh = cache.dir / "shard-0000.npy", cache.dir / "shard-1111.npy"
    temp = cache.dir / ".shard-2222.npy.abcd1234.tmp"
    for path in (orphan, fresh, temp):
        np.save(path, np.zeros(3)) if path.suffix == ".npy" else path.write_bytes(b"")
    old = time.time() - storage.STALE_SECONDS - 60
    for path in (orphan, temp):
        os.utime(path, (old, old))
    assert sorted(cache.prune()) == sorted([orphan, temp])
    assert fresh.exists()  # maybe a write in progress, its index still to come


# --- checkpoints ------------------------------------------------------------------------------

def _edited_checkpoint(source: Path, target: Path, edit) -> Path:
    """A copy of the checkpoint at ``source`` with ``edit`` applied to its dict."""
    payload = torch.load(source, weights_only=True)
    edit(payload)
    torch.save(payload, target)
    return target


@pytest.mark.parametrize("edit, problem", [
    (lambda p: p.pop("state"), "'state' is missing"),
    (lambda p: p.update(state=[1, 2]), "'state' is missing or not a dict"),
    (lambda p: p.pop("audio"), "'audio' is missing"),
    (lambda p: p["audio"].update(hop_length=0), "hop_length must be a positive integer"),
    (lambda p: p["audio"].update(n_fft="1024"), "n_fft must be a positive integer"),
    (lambda p: p["audio"].update(f_max=1e6), "f_max <= sample_rate / 2"),
    (lambda p: p["audio"].update(colour="red"), "Unknown audio parameters"),
    (lambda p: p["model_config"].update(layers=9), "unexpected keyword argument 'layers'"),
    (lambda p: p.update(model_config="big"), "'model_config' is missing or not a dict"),
    (lambda p: p["state"].pop("model"), "no 'model' state"),
    (lambda p: p["state"]["model"].update({"head.2.weight": torch.zeros(3, 3)}),
     "does not match its 'model' weights: head.2.weight is (3, 3)"),
    (lambda p: p.update(normalizer={"shift": [0.0]}), "not a readable"),
    # sizes no larger than the weights could hold are checked against them before allocating
    (lambda p: p["model_config"].update(n_blocks=10 ** 6), "n_blocks = 1000000 cannot fit"),
    (lambda p: p["model_config"].update(channels=10 ** 6), "channels = 1000000 cannot fit"),
    (lambda p: p["model_config"].update(n_classes=-1), "n_classes = -1 cannot fit"),
    (lambda p: p["model_config"].update(n_blocks=2), "does not match its 'model' weights"),
    (lambda p: p["model_config"].update(dropout=5.0), "dropout probability"),
    (lambda p: p["extra"].update(ensemble=10 ** 9), "ensemble 1000000000"),
    (lambda p: p.update(labels=["neutral", "calm"]), "8 outputs but 2 emotion labels"),
])
def test_malformed_classifier_checkpoints_give_the_clean_error(classifier_path, tmp_path, edit,
                                                               problem, capsys):
    path = _edited_checkpoint(classifier_path, tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable emogan checkpoint") as err:
        quickly(load_classifier, path, seconds=10)
    assert problem in str(err.value)
    assert cli.main(["evaluate-classifier", "--checkpoint", str(path),
                     "--data", str(tmp_path)]) == 2
    assert "bad.pt: not a readable emogan checkpoint" in capsys.readouterr().err


def test_malformed_gan_checkpoints_give_the_clean_error(generator_path, tmp_path):
    def unknown_key(p):
        p["model_config"]["generator"]["wings"] = 2

    def sized(**sizes):
        return lambda p: p["model_config"]["generator"].update(sizes)

    for edit, problem in (
            (unknown_key, "wings"), (lambda p: p["model_config"].pop("generator"), "Generator"),
            (lambda p: p["state"].clear(), "no 'generator' state"),
            (sized(channels=10 ** 6), "channels = 1000000 cannot fit"),
            (sized(depth=10 ** 6), "depth = 1000000 cannot fit"),
            (sized(n_res_blocks=-1), "n_res_blocks = -1 cannot fit"),
            (sized(n_res_blocks=2), "does not match its 'generator' weights"),
            (lambda p: p.update(labels=["neutral", "calm"]), "takes 8 emotions but the "
                                                             "checkpoint names 2")):
        path = _edited_checkpoint(generator_path, tmp_path / "bad_gan.pt", edit)
        with pytest.raises(CheckpointError, match=r"bad_gan\.pt: not a readable emogan") as err:
            quickly(Translator, path, seconds=10)
        assert problem in str(err.value)


def test_an_extra_field_is_ignored(classifier_path, tmp_path):
    path = _edited_checkpoint(classifier_path, tmp_path / "newer.pt",
                              lambda p: p.update(comment="made by a later emogan"))
    assert load_classifier(path).norm_mode == "global"


class _Payload:
    """Runs a command when unpickled: what a malicious checkpoint holds."""

    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_a_malicious_checkpoint_is_refused_without_advice_to_load_it_unsafely(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "evil.pt: not a readable emogan checkpoint" in message and "system" in message
    assert "will likely succeed" not in message
    assert "Do not load it with torch.load(weights_only=False)" in message
    assert cli.main(["evaluate-classifier", "--checkpoint", str(path),
                     "--data", str(tmp_path)]) == 2
    assert "owned" not in capsys.readouterr().out


def test_stale_temporary_files_of_a_checkpoint_are_removed_at_the_next_save(tmp_path):
    target = tmp_path / "gan.pt"
    stale, fresh = tmp_path / ".gan.pt.0badc0de.tmp", tmp_path / ".gan.pt.feedbeef.tmp"
    other = tmp_path / ".other.pt.0badc0de.tmp"
    for path in (stale, fresh, other):
        path.write_bytes(b"")  # a save killed before it wrote anything
    old = time.time() - storage.STALE_SECONDS - 60
    for path in (stale, other):
        os.utime(path, (old, old))
    save_checkpoint(target, kind="gan", model_config={}, state={}, audio=CFG)
    assert not stale.exists() and fresh.exists() and other.exists()


# --- resume with other data, actors or configuration ----------------------------------------

def _copy_without_one_file(corpus: Path, target: Path) -> Path:
    """The corpus at ``corpus`` copied to ``target``, less one recording."""
    shutil.copytree(corpus, target)
    next((target / "Actor_01").iterdir()).unlink()
    return target


@pytest.mark.slow
def test_classifier_resume_refuses_other_actors_data_or_settings(tiny_corpus, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    run = tmp_path / "clf.pt.run"
    common = dict(config=ONE_EPOCH, cache_dir=tmp_path / "cache", checkpoint=run)
    train_classifier(tiny_corpus, val_actors=[2], train_actors=[1], **common)
    assert load_checkpoint(run)["extra"]["train_actors"] == [1]
    with pytest.raises(CheckpointError, match=r"cannot resume, made with other data.*"
                                              r"train_actors: \[1\] != \[2\]"):
        train_classifier(tiny_corpus, val_actors=[1], train_actors=[2], resume=True, **common)
    other = _copy_without_one_file(tiny_corpus, tmp_path / "other")
    with pytest.raises(CheckpointError, match=r"made with other data.*corpus: "):
        train_classifier(other, val_actors=[2], train_actors=[1], resume=True, **common)
    with pytest.raises(CheckpointError, match="another classifier training configuration"):
        train_classifier(tiny_corpus, val_actors=[2], train_actors=[1], resume=True,
                         **{**common, "config": dataclasses.replace(ONE_EPOCH, seed=1)})
    moved = Path(shutil.copytree(tiny_corpus, tmp_path / "moved"))  # same files elsewhere
    train_classifier(moved, val_actors=[2], train_actors=[1], resume=True, **common)


@pytest.mark.slow
def test_classifier_cli_resume_with_other_val_actors_is_refused(tiny_corpus, tmp_path,
                                                                monkeypatch, capsys):
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    out = tmp_path / "clf.pt"
    run = out.with_name("clf.pt.run")
    train_classifier(tiny_corpus, val_actors=[2], train_actors=[1],
                     config=ClassifierTrainConfig.quick(epochs=1, batch_size=8, progress=False),
                     cache_dir=tmp_path / "work" / "cache", checkpoint=run)
    assert cli.main(["train-classifier", "--data", str(tiny_corpus), "--out", str(out),
                     "--quick", "--epochs", "1", "--batch-size", "8",
                     "--actors", "2", "--val-actors", "1", "--resume"]) == 2
    assert "cannot resume, made with other data" in capsys.readouterr().err
    assert run.exists() and not out.exists()


@pytest.mark.slow
def test_gan_resume_refuses_other_actors_or_data(tiny_corpus, tmp_path):
    out = tmp_path / "gan.pt"
    common = dict(config=TINY_GAN, cache_dir=tmp_path / "cache", progress=False)
    train_gan(tiny_corpus, out, train_actors=[1], stop_after=1, **common)
    with pytest.raises(CheckpointError, match=r"other data.*train_actors: \[1\] != \[1, 2\]"):
        train_gan(tiny_corpus, out, train_actors=[1, 2], resume=True, **common)
    other = _copy_without_one_file(tiny_corpus, tmp_path / "other")
    with pytest.raises(CheckpointError, match="other data.*corpus"):
        train_gan(other, out, train_actors=[1], resume=True, **common)
    history = train_gan(tiny_corpus, out, train_actors=[1], resume=True, **common)
    assert len(history["loss_g"]) == TINY_GAN.epochs


# --- corpora with duplicates and link loops ---------------------------------------------------

def test_the_same_recordings_in_two_places_are_counted_once(tiny_corpus):
    for path in (tiny_corpus / "Actor_01").iterdir():
        shutil.copy(path, tiny_corpus / path.name)  # flat copies at the root
    flac = tiny_corpus / "Actor_02" / ravdess_name(3, 1, 1, 1, 2, ".flac")
    data, rate = sf.read(flac.with_suffix(".wav"))
    sf.write(flac, data, rate)  # a FLAC copy beside its WAV
    skipped: list = []
    with pytest.warns(UserWarning, match="the same recording as"):
        table = load_corpus(tiny_corpus, skipped=skipped)
    assert len(table) == 16 and len(skipped) == 9
    assert table["path"].map(lambda p: Path(p).stem).is_unique


def test_links_are_followed_once_and_loops_end(tiny_corpus):
    os.symlink("..", tiny_corpus / "Actor_01" / "up")  # a folder loop
    os.symlink(tiny_corpus / "Actor_02", tiny_corpus / "mirror")  # the same folder twice
    looping = tiny_corpus / ravdess_name(2, 1, 2, 1, 3)
    os.symlink(looping.name, looping)  # a file link to itself
    second_take = tiny_corpus / "Actor_01" / ravdess_name(2, 1, 1, 2, 1)
    os.symlink(tiny_corpus / "Actor_01" / ravdess_name(2, 1, 1, 1, 1), second_take)
    skipped: list = []
    with pytest.warns(UserWarning):
        table = quickly(load_corpus, tiny_corpus, skipped=skipped, seconds=10)
    assert len(table) == 16
    reasons = {Path(path).name: why for path, why in skipped}
    assert "looping link" in reasons[looping.name]
    assert "the same recording as" in reasons[second_take.name]


# --- outputs --------------------------------------------------------------------------------

def test_translate_refuses_bad_outputs_before_translating(tmp_path, capsys):
    source = tmp_path / "in.wav"
    sf.write(source, tone(200, 1.0, 16000), 16000)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("")
    missing_generator = str(tmp_path / "no_such_gan.pt")  # so loading would fail first
    for output, problem in ((tmp_path, "is a folder"), (tmp_path / "a.mp3", "cannot write .mp3"),
                            (source, "would overwrite the input"),
                            (a_file / "x.wav", "notes.txt is not a folder")):
        assert cli.main(["translate", "--generator", missing_generator, "--input", str(source),
                         "--to", "angry", "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err and "no_such_gan" not in err
    with pytest.raises(storage.OutputError, match="cannot write .mp3"):
        storage.write_audio(tmp_path / "b.mp3", np.zeros(10), 16000)
    assert not (tmp_path / "b.mp3").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_unwritable_output_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(storage.OutputError, match="is not writable"):
        storage.check_audio_output(locked / "out.wav")


def test_download_into_something_not_a_folder_is_a_clean_error(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert cli.main(["download", "--dest", str(a_file / "data")]) == 2
    err = capsys.readouterr().err
    assert "file is not a folder" in err and "Traceback" not in err


# --- interrupted and partial work --------------------------------------------------------------

@pytest.mark.parametrize("command, module, function", [
    ("train-classifier", classifier_training, "train_classifier"),
    ("train-gan", gan_training, "train_gan")])
def test_ctrl_c_during_training_says_how_to_resume(tmp_path, monkeypatch, capsys, command,
                                                   module, function):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, function, interrupted)
    assert cli.main([command, "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err


def test_features_command_skips_bad_files_unless_strict(tiny_corpus, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.setenv("EMOGAN_WORK", str(tmp_path / "work"))
    bad = next((tiny_corpus / "Actor_02").iterdir())
    bad.write_bytes(b"not audio")
    with pytest.warns(UserWarning, match="1 unusable audio file"):
        assert cli.main(["features", "--data", str(tiny_corpus)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["files"] == 15 and report["skipped"] == [str(bad)]
    assert cli.main(["features", "--data", str(tiny_corpus), "--strict"]) == 2
    assert bad.name in capsys.readouterr().err



# --- long clips -------------------------------------------------------------------------------

def _dense_mapping(gain_db: np.ndarray, audio: AudioConfig, frames: WorldFrames) -> np.ndarray:
    """The envelope gain by explicit (WORLD frames x mel frames) and (bins x mel bands)
    interpolation matrices: what :func:`mel_gain_to_envelope` must equal, with no smoothing."""
    def matrix(at, known):
        return np.stack([np.interp(at, known, unit) for unit in np.eye(len(known))], axis=1)

    gain = np.clip(gain_db * 1.0, -24.0, 24.0)
    centres = librosa.mel_frequencies(audio.n_mels + 2, fmin=audio.f_min, fmax=audio.f_max)[1:-1]
    bins = np.linspace(0.0, frames.sample_rate / 2, frames.envelope.shape[1])
    mel_times = np.arange(gain.shape[1]) * audio.hop_length / audio.sample_rate
    return 10.0 ** (matrix(frames.times, mel_times) @ gain.T @ matrix(bins, centres).T / 10.0)


def _frames(n_frames: int, bins: int) -> WorldFrames:
    """WORLD frames of ``n_frames`` 5 ms frames with ``bins`` envelope bins (values unused)."""
    return WorldFrames(np.zeros(n_frames), np.ones((n_frames, bins)), np.ones((n_frames, bins)),
                       CFG.sample_rate, 5.0)


def test_the_envelope_mapping_equals_dense_interpolation_on_a_short_clip():
    rng = np.random.default_rng(0)
    frames = _frames(203, 65)  # WORLD's frames run past the last mel frame: the ends are held
    gain = rng.uniform(-30, 30, (CFG.n_mels, 60))
    edit = EnvelopeEdit(scale=1.0, n_cepstra=0)
    np.testing.assert_allclose(mel_gain_to_envelope(gain, CFG, frames, edit),
                               _dense_mapping(gain, CFG, frames), rtol=1e-10)


def _mapping_peak(minutes: float) -> tuple[int, int]:
    """Peak bytes traced while mapping a ``minutes``-long mel gain onto WORLD frames, and the
    bytes a dense (WORLD frames x mel frames) float64 matrix would take."""
    frames = _frames(int(minutes * 60 * 200), 33)
    gain = np.zeros((CFG.n_mels, CFG.frames(int(minutes * 60 * CFG.sample_rate))))
    tracemalloc.start()
    try:
        mapped = quickly(mel_gain_to_envelope, gain, CFG, frames, seconds=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mapped.shape == frames.envelope.shape
    return peak, frames.n_frames * gain.shape[1] * 8


def test_the_envelope_mapping_memory_grows_with_the_clip_not_the_frame_product():
    short, _ = _mapping_peak(2.5)
    long, dense = _mapping_peak(5.0)
    assert long < 2.5 * short  # twice the length: twice the memory, not four times
    assert long < dense / 100  # the dense matrix of a 5-minute clip: 9 GB


# --- non-finite numbers -----------------------------------------------------------------------

@pytest.mark.parametrize("command, module, function, options, problem", [
    ("train-gan", gan_training, "train_gan", ["--cls-weight", "inf"], "w_cls"),
    ("train-gan", gan_training, "train_gan", ["--cls-weight", "nan"], "w_cls"),
    ("train-gan", gan_training, "train_gan", ["--epochs", "0"], "epochs"),
    ("train-gan", gan_training, "train_gan", ["--batch-size", "0"], "batch_size"),
    ("train-classifier", classifier_training, "train_classifier", ["--epochs", "0"], "epochs"),
    ("train-classifier", classifier_training, "train_classifier", ["--batch-size", "0"],
     "batch_size"),
    ("train-classifier", classifier_training, "train_classifier",
     ["--speaker-adversary", "nan"], "speaker_adversary")])
def test_impossible_training_options_are_one_line_before_any_work(
        tmp_path, monkeypatch, capsys, command, module, function, options, problem):
    def never_called(*args, **kwargs):
        raise AssertionError("training started with an impossible option")

    monkeypatch.setattr(module, function, never_called)
    assert cli.main([command, "--data", str(tmp_path), "--out", str(tmp_path / "m.pt"),
                     *options]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{problem} must be a finite number >= " in err and options[1] in err


def test_a_gan_that_diverges_stops_with_a_clear_error_and_keeps_its_last_good_checkpoint(
        tiny_corpus, tmp_path, monkeypatch):
    real_step, steps = gan_training.gan_step, []

    def poisoned_in_epoch_2(parts, batch, config, dtype, nets=None):
        steps.append(1)
        if len(steps) == 3:  # the first step of the second epoch (two steps an epoch)
            with torch.no_grad():
                next(parts.generator.parameters()).fill_(float("nan"))
        return real_step(parts, batch, config, dtype, nets)

    monkeypatch.setattr(gan_training, "gan_step", poisoned_in_epoch_2)
    out = tmp_path / "gan.pt"
    with pytest.raises(DivergedError,
                       match=r"epoch 2: the \w+ loss is nan .*gan.pt keeps the last finished"):
        train_gan(tiny_corpus, out, TINY_GAN, progress=False)
    assert load_checkpoint(out, kind="gan")["extra"]["epoch"] == 1  # finite, from epoch 1
    assert len(steps) == 3  # stopped at once, not after the epoch


def test_a_classifier_that_diverges_stops_with_a_clear_error():
    x = np.full((8, 80, 32), np.nan, np.float32)  # every clip: no mask can hide it
    y = np.arange(8) % 2
    with pytest.raises(DivergedError, match="epoch 1: the training loss is nan"):
        classifier_training.fit_classifier(x, y, np.zeros_like(x[:2]), y[:2], ONE_EPOCH)


def test_non_finite_weights_are_neither_saved_nor_used(classifier_path, tmp_path, capsys):
    bad = EmotionClassifier(SMALL)
    with torch.no_grad():
        next(bad.parameters())[0] = float("inf")
    target = tmp_path / "clf.pt"
    target.write_bytes(b"an earlier model")
    with pytest.raises(CheckpointError, match=r"clf.pt: not saved: state\.model\.\S+ holds NaN"):
        save_checkpoint(target, kind="classifier", model_config=asdict(SMALL),
                        state={"model": bad.state_dict()}, audio=CFG)
    assert target.read_bytes() == b"an earlier model"
    # a file made elsewhere (or before this check) is refused when loaded
    payload = torch.load(classifier_path, weights_only=True)
    name = next(iter(payload["state"]["model"]))
    payload["state"]["model"][name] = payload["state"]["model"][name] * float("nan")
    torch.save(payload, target)
    with pytest.raises(CheckpointError, match=f"clf.pt: unusable checkpoint: model.{name} "
                                              "holds NaN"):
        load_classifier(target)
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(200, 1.0, 16000), 16000)
    assert cli.main(["predict", "--classifier", str(target), str(clip)]) == 2
    assert "holds NaN or infinite values" in capsys.readouterr().err


# --- speakers held out ------------------------------------------------------------------------

def test_train_gan_holds_out_a_manifests_val_and_test_speakers(tiny_corpus, tmp_path,
                                                               monkeypatch):
    for actor in (3, 4):  # two more actors, copies of actor 1's clips
        shutil.copytree(tiny_corpus / "Actor_01", tiny_corpus / f"Actor_{actor:02d}")
        for clip in (tiny_corpus / f"Actor_{actor:02d}").iterdir():
            clip.rename(clip.with_name(clip.name.replace("-01.wav", f"-{actor:02d}.wav")))
    table = load_corpus(tiny_corpus)
    table["split"] = table["actor"].map({1: "", 2: "", 3: "val", 4: "test"})
    manifest = write_manifest(table, tmp_path / "corpus.csv")
    seen = {}
    monkeypatch.setattr(gan_training, "fit_gan",
                        lambda *args, data=None, **kwargs: seen.update(data) or {})
    train_gan(manifest, tmp_path / "gan.pt", TINY_GAN, progress=False)
    assert seen["train_actors"] == [1, 2] and seen["val_actors"] == [3]


def test_one_speaker_cannot_be_both_trained_and_validated_on(tiny_corpus, tmp_path):
    shutil.rmtree(tiny_corpus / "Actor_02")
    with pytest.raises(ValueError, match=r"no actors left to train on: the corpus has actors "
                                         r"\[1\], all held out .*--val-actors"):
        quickly(train_gan, tiny_corpus, tmp_path / "gan.pt", TINY_GAN, val_actors=[1],
                seconds=5)


def test_two_speakers_are_too_few_for_the_default_validation_split(tiny_corpus):
    with pytest.raises(ValueError, match=r"2 actor\(s\) \(\[1, 2\]\), too few to hold two out "
                                         r"for validation.*--val-actors"):
        quickly(train_classifier, tiny_corpus, config=ONE_EPOCH, seconds=5)


def test_evaluate_translation_scores_unseen_actors_and_warns_about_seen_ones(
        tiny_corpus, tmp_path, classifier_path, monkeypatch, capsys):
    generator = UNetGenerator(TINY_GAN.generator)
    gan = save_checkpoint(tmp_path / "gan.pt", kind="gan", audio=CFG,
                          model_config={"generator": asdict(TINY_GAN.generator),
                                        "discriminator": asdict(TINY_GAN.discriminator)},
                          state={"generator": generator.state_dict()},
                          normalizer=Normalizer(np.array([-50.0]), np.array([50.0]), clip=True),
                          extra={"train_actors": [1], "val_actors": []})
    scored = []
    monkeypatch.setattr(evaluate, "evaluate_translation",
                        lambda translator, judge, table, source: scored.append(
                            sorted(set(table["actor"]))) or {})
    command = ["evaluate-translation", "--generator", str(gan), "--classifier",
               str(classifier_path), "--data", str(tiny_corpus)]
    # the GAN trained on actor 1, the judge on 1 and validated on 2: nobody is left
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert "every actor was used to train or validate" in err and "--actors" in err
    assert cli.main([*command, "--actors", "2"]) == 0
    captured = capsys.readouterr()
    assert scored == [[2]]
    assert f"speakers ['ravdess/02'] were used in training or validation of {classifier_path}" \
        in captured.err and f"of {gan}" not in captured.err
    assert json.loads(captured.out.splitlines()[-1])["seen_in_training"] == ["ravdess/02"]


# --- command-line batches, ranges and overwrites ----------------------------------------------

def test_predict_reports_every_file_of_a_batch_with_a_bad_one(classifier_path, tmp_path,
                                                              capsys):
    good = tmp_path / "good.wav"
    sf.write(good, tone(200, 1.0, 16000, lead=0.2), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    assert cli.main(["predict", "--classifier", str(classifier_path), str(good), str(bad),
                     str(good)]) == 1
    captured = capsys.readouterr()
    predictions = json.loads(captured.out.splitlines()[-1])["predictions"]
    assert [p["file"] for p in predictions] == [str(good), str(bad), str(good)]
    assert "emotion" in predictions[0] and predictions[0] == predictions[2]
    assert "error" in predictions[1] and "emotion" not in predictions[1]
    assert f"{bad}: skipped:" in captured.err and "Traceback" not in captured.err
    assert cli.main(["predict", "--classifier", str(classifier_path), str(good)]) == 0
    capsys.readouterr()
    assert cli.main(["predict", "--strict", "--classifier", str(classifier_path), str(bad),
                     str(good)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "bad.wav" in captured.err


@pytest.mark.parametrize("actors, problem", [
    ("1-1000000000", "1000000000 actors, more than the 10000"),
    ("1-6000,7000-12000", "11001 actors, more than the 10000"),
    ("20-1", "runs backwards"),
    ("OAF,1-20000", "20000 actors, more than the 10000")])
def test_impossible_actor_lists_are_refused_before_anything_is_listed(
        tmp_path, capsys, actors, problem):
    assert quickly(cli.main, ["train-gan", "--data", str(tmp_path), "--out",
                              str(tmp_path / "gan.pt"), "--actors", actors], seconds=5) == 2
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err


def test_training_refuses_to_replace_another_kind_of_file_without_force(
        classifier_path, generator_path, tmp_path, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(classifier_training, "train_classifier",
                        lambda *args, **kwargs: trained.append(1) or pytest.fail("trained"))
    monkeypatch.setattr(gan_training, "train_gan", lambda *args, **kwargs: trained.append(1))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    gan = tmp_path / "gan.pt"
    shutil.copy(generator_path, gan)
    for command, out, what in (("train-classifier", gan, "a gan checkpoint"),
                               ("train-gan", notes, "not an emogan checkpoint"),
                               ("train-gan", classifier_path, "a classifier checkpoint")):
        before = out.read_bytes()
        assert cli.main([command, "--data", str(tmp_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{out}: exists and is {what}" in err and "--force" in err
        assert out.read_bytes() == before
    assert trained == []
    # the same kind is replaced (a new run), and --force replaces anything
    monkeypatch.setattr(gan_training, "train_gan",
                        lambda *args, **kwargs: trained.append(1) or {"loss_g": [0.5]})
    assert cli.main(["train-gan", "--data", str(tmp_path), "--out", str(gan)]) == 0
    assert cli.main(["train-gan", "--data", str(tmp_path), "--out", str(notes), "--force"]) == 0
    assert trained == [1, 1]


# --- manifest content -------------------------------------------------------------------------

@pytest.mark.parametrize("train", [
    lambda data, tmp: train_classifier(data, val_actors=[2], config=ONE_EPOCH),
    lambda data, tmp: train_gan(data, tmp / "gan.pt", TINY_GAN, progress=False)])
def test_a_one_emotion_corpus_is_refused_before_training(tiny_corpus, tmp_path, train):
    table = load_corpus(tiny_corpus)
    manifest = write_manifest(table[table["emotion"] == "angry"], tmp_path / "angry.csv")
    with pytest.raises(ValueError, match=r"angry.csv: the recordings hold 1 emotion\(s\) "
                                         r"\(angry\); training needs at least two"):
        quickly(train, manifest, tmp_path, seconds=5)
    assert not (tmp_path / "gan.pt").exists()
