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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emogan_utils import classifier_training, cli, gan_training, storage
from emogan_utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from emogan_utils.classifier_training import (ClassifierTrainConfig, TrainedClassifier,
                                              save_classifier, train_classifier)
from emogan_utils.data import load_corpus, ravdess_name
from emogan_utils.features import (MAX_SAMPLE_RATE, MAX_SECONDS, MIN_SAMPLE_RATE, AudioConfig,
                                   AudioError, FeatureCache, Normalizer, NoSpeechError,
                                   extract_features, load_audio, prepare_waveform, read_audio)
from emogan_utils.gan_training import GANTrainConfig, train_gan
from emogan_utils.inference import Translator, load_classifier, predict
from emogan_utils.models import (ClassifierConfig, DiscriminatorConfig, EmotionClassifier,
                                 GeneratorConfig, UNetGenerator)

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
     "'model' state does not fit"),
    (lambda p: p.update(normalizer={"shift": [0.0]}), "not a readable"),
])
def test_malformed_classifier_checkpoints_give_the_clean_error(classifier_path, tmp_path, edit,
                                                               problem, capsys):
    path = _edited_checkpoint(classifier_path, tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable emogan checkpoint") as err:
        load_classifier(path)
    assert problem in str(err.value)
    assert cli.main(["evaluate-classifier", "--checkpoint", str(path),
                     "--data", str(tmp_path)]) == 2
    assert "bad.pt: not a readable emogan checkpoint" in capsys.readouterr().err


def test_malformed_gan_checkpoints_give_the_clean_error(generator_path, tmp_path):
    def unknown_key(p):
        p["model_config"]["generator"]["wings"] = 2

    for edit in (unknown_key, lambda p: p["model_config"].pop("generator"),
                 lambda p: p["state"].clear()):
        path = _edited_checkpoint(generator_path, tmp_path / "bad_gan.pt", edit)
        with pytest.raises(CheckpointError, match=r"bad_gan\.pt: not a readable emogan"):
            Translator(path)


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

