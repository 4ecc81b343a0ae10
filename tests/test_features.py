import json
import os

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import emogan_utils.features as features
from conftest import EPS32, db_atol, sum_rtol, tone
from emogan_utils.data import load_corpus, ravdess_name
from emogan_utils.features import (
    AudioConfig, AudioError, FeatureCache, LogMel, MelFilterbank, Normalizer, batches_by_length,
    corpus_features, db_to_power, extract_features, fit_per_speaker, fix_length, load_audio,
    log_mel, normalize_per_speaker, prepare_waveform, read_audio, trim_silence,
)

CFG = AudioConfig()
# Log-mels of the same audio computed in other batches (or on other threads) may add float32
# terms in another order. An STFT bin's rounding error is relative to its frame's energy rather
# than its own, so a band well below the frame's strongest carries it magnified; counting all
# n_fft samples of a frame as terms of each band's power covers that: 1.1e-3 dB, far below the
# several dB by which standardisation divides.
STFT_DB_ATOL = db_atol(CFG.n_fft)


def write(path, wave, rate, subtype="PCM_16"):
    sf.write(path, wave, rate, subtype=subtype)
    return path


def test_config_key_and_frames():
    assert CFG.n_samples == 48000 and CFG.n_frames == 188
    assert (CFG.frames(255), CFG.frames(256), CFG.frames(48000)) == (1, 2, 188)
    assert (CFG.sound_stop(5000, 48000), CFG.sound_stop(47800, 48000)) == (5512, 48000)
    assert CFG.key() == AudioConfig().key() != AudioConfig(n_mels=64).key()
    assert AudioConfig.from_dict(CFG.to_dict()) == CFG
    assert AudioConfig(hop_length=200).differences(CFG) == ["hop_length: 200 != 256"]
    with pytest.raises(ValueError, match="bogus"):
        AudioConfig.from_dict({**CFG.to_dict(), "bogus": 1})


def test_load_audio_resamples_downmixes_trims_and_pads(tmp_path):
    stereo = np.stack([tone(440, 1.0, 44100, lead=0.5), tone(440, 1.0, 44100, lead=0.5)], axis=1)
    path = write(tmp_path / "s.wav", stereo, 44100)
    wave = load_audio(path, CFG)
    assert wave.dtype == np.float32 and wave.shape == (CFG.n_samples,)
    # leading silence trimmed: the tone starts within the first 50 ms
    assert np.abs(wave[: int(0.05 * 16000)]).max() > 0.1
    assert np.abs(wave[int(1.1 * 16000):]).max() == 0  # zero padding after 1 s of tone
    untrimmed = load_audio(path, CFG, trim=False, fixed_length=False)
    assert abs(untrimmed.size - 1.5 * 16000) <= 2


def test_crop_long_audio(tmp_path):
    path = write(tmp_path / "long.wav", tone(300, 5.0, 16000), 16000)
    assert load_audio(path, CFG).shape == (48000,)
    assert fix_length(np.ones((2, 10)), 4).shape == (2, 4)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_bit_depths_load_to_same_signal(tmp_path, subtype):
    ref = tone(500, 1.0, 16000)
    wave, rate = read_audio(write(tmp_path / f"{subtype}.wav", ref, 16000, subtype))
    assert rate == 16000 and np.allclose(wave, ref, atol=2e-2)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
@pytest.mark.parametrize("channels", [1, 2])
def test_16_bit_files_read_as_libsndfile_converts_them(tmp_path, fmt, channels):
    rng = np.random.default_rng(channels)
    wave = rng.uniform(-1, 1, (4000, channels)).astype(np.float32)
    wave[:3] = [[-1.0] * channels, [1.0] * channels, [0.0] * channels]  # the extremes
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, wave, 16000, subtype="PCM_16", format=fmt)
    theirs, _ = sf.read(path, dtype="float32", always_2d=True)
    ours, rate = read_audio(path)
    assert rate == 16000 and ours.dtype == np.float32
    assert np.array_equal(ours, theirs.mean(axis=1) if channels == 2 else theirs[:, 0])


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        read_audio(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError, match="corrupt.wav: cannot read audio"):
        read_audio(corrupt)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav"):
        read_audio(empty)
    zero = write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="zero.wav: file holds no samples"):
        read_audio(zero)
    nan = write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], np.float32), 16000, "FLOAT")
    with pytest.raises(AudioError, match="nan.wav: audio contains NaN"):
        read_audio(nan)


def test_silent_file_is_kept_not_trimmed_away(tmp_path):
    wave = load_audio(write(tmp_path / "quiet.wav", np.zeros(8000, np.float32), 16000), CFG)
    assert wave.shape == (48000,) and not wave.any()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(samples=st.integers(1, 40000), start=st.floats(0, 1), stop=st.floats(0, 1),
       level=st.floats(1e-4, 1.0), noise=st.floats(0, 1e-2), top_db=st.floats(5, 80))
def test_trim_cuts_exactly_where_librosa_does(samples, start, stop, level, noise, top_db):
    rng = np.random.default_rng(samples)
    wave = (noise * level * rng.standard_normal(samples)).astype(np.float32)
    a, b = sorted(min(int(f * samples), samples - 1) for f in (start, stop))
    wave[a:b + 1] += level * rng.standard_normal(b + 1 - a).astype(np.float32)
    ref, _ = librosa.effects.trim(wave, top_db=top_db, frame_length=1024, hop_length=256)
    assert np.array_equal(trim_silence(wave, top_db), ref)


def test_trim_keeps_silence_and_refuses_bad_framing():
    assert trim_silence(np.zeros(5000, np.float32), 40).size == 5000
    wave = np.ones(3000, np.float32)
    assert trim_silence(wave, None) is wave and trim_silence(wave, 0).size == 3000
    with pytest.raises(ValueError, match="multiple of hop_length"):
        trim_silence(wave, 40, frame_length=1000, hop_length=256)


def test_log_mel_matches_librosa():
    wave = tone(440, 1.0, 16000) + 0.01 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    ours = log_mel(wave, CFG)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=wave, sr=16000, n_fft=1024, hop_length=256, n_mels=80, fmin=0, fmax=8000,
        pad_mode="constant"), ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == ref.shape == (80, 63)
    assert np.abs(ours - ref).max() < 0.01


def test_log_mel_batch_floor_and_inverse():
    batch = torch.zeros(3, 16000)
    batch[1] = torch.from_numpy(tone(1000, 1.0, 16000))
    mel = LogMel(CFG)(batch)
    assert mel.shape == (3, 80, 63)
    assert mel[0].max() == CFG.db_floor  # silence sits exactly at the floor
    peak_bin = mel[1].mean(dim=1).argmax().item()
    centres = librosa.mel_frequencies(82, fmin=0, fmax=8000)[1:-1]
    assert abs(centres[peak_bin] - 1000) < 80
    # dB -> power -> dB: 10**(x/10) is off by |x| ln(10)/10 ~ 23 eps32 relative at 100 dB, the
    # logarithm by eps32 * |x|: 2.6e-5 dB in all; 1e-4 leaves a factor 4.
    assert torch.allclose(10 * torch.log10(db_to_power(mel[1])), mel[1], atol=1e-4)


def test_log_mel_skips_only_frames_that_see_trailing_zeros():
    rng = np.random.default_rng(0)
    config = AudioConfig(duration=1.0)
    short = np.zeros(config.n_samples, np.float32)
    short[:5000] = rng.standard_normal(5000)
    full = rng.standard_normal(config.n_samples).astype(np.float32)
    transform = LogMel(config)
    alone = transform(torch.from_numpy(short))  # computes only the frames up to sample 5512
    beside_a_full_clip = transform(torch.from_numpy(np.stack([short, full])))[0]  # every frame
    assert alone.shape == beside_a_full_clip.shape == (80, config.n_frames)
    torch.testing.assert_close(alone, beside_a_full_clip, rtol=0, atol=STFT_DB_ATOL)
    assert alone[:, 1 + 5000 // 256].max() > config.db_floor  # the frame over the end has sound
    assert torch.all(alone[:, 2 + 5512 // 256:] == config.db_floor)
    assert torch.all(transform(torch.zeros(2, 3000)) == config.db_floor)
    short[-1] = np.nan  # a NaN in the padding is not skipped
    assert torch.isnan(transform(torch.from_numpy(short))).any()


def test_blocked_filterbank_is_the_dense_product():
    bank = MelFilterbank(CFG)
    dense = bank.weights
    covered = torch.zeros_like(dense)
    for mels, bins in bank.blocks:
        covered[bins, mels] = dense[bins, mels]
    assert torch.equal(covered, dense)  # no weight lies outside its block's bins
    # Non-negative inputs and weights: sums without cancellation, of as many non-zero terms
    # as a filter covers bins (37), or as a bin lies in filters (2); zero terms add nothing.
    widest, overlap = int((dense > 0).sum(0).max()), int((dense > 0).sum(1).max())
    power = torch.rand(3, 7, CFG.n_fft // 2 + 1)
    torch.testing.assert_close(bank(power), power @ dense, rtol=sum_rtol(widest), atol=0)
    mel = torch.rand(3, 7, CFG.n_mels)
    torch.testing.assert_close(bank.transpose(mel), mel @ dense.T, rtol=sum_rtol(overlap), atol=0)
    narrow = MelFilterbank(AudioConfig(n_mels=40, f_max=4000.0), block=16)
    assert [mels.stop for mels, _ in narrow.blocks] == [16, 32, 48]  # the last block is short
    assert narrow.blocks[-1][1].stop <= 257  # no filter reaches above 4 kHz


def test_batches_by_length():
    assert batches_by_length([5, 1, 4, 1, 9], 2) == [[1, 3], [2, 0], [4]]
    assert batches_by_length([], 4) == []


def test_loudness_is_kept():
    quiet, loud = tone(440, 1.0, 16000, 0.05), tone(440, 1.0, 16000, 0.5)
    diff = log_mel(loud, CFG).max() - log_mel(quiet, CFG).max()
    assert abs(diff - 20.0) < 0.1  # 10x amplitude = +20 dB


def test_prepare_waveform_matches_file_path(tmp_path):
    wave = tone(300, 1.0, 22050, lead=0.4)
    path = write(tmp_path / "a.wav", wave, 22050, "FLOAT")
    assert np.allclose(prepare_waveform(wave, 22050, CFG), load_audio(path, CFG), atol=1e-6)
    assert np.allclose(prepare_waveform(torch.from_numpy(np.stack([wave, wave])), 22050, CFG),
                       load_audio(path, CFG), atol=1e-6)
    with pytest.raises(AudioError, match="NaN"):
        prepare_waveform(np.array([np.nan, 1.0]), 16000, CFG)


def test_normalizers_fit_and_invert():
    rng = np.random.default_rng(0)
    feats = rng.normal(-40, 10, size=(20, 80, 50)).astype(np.float32)
    feats[:, :, 40:] = CFG.db_floor  # padding frames are ignored by the fit
    std = Normalizer.fit_standard(feats)
    z = std(feats[:, :, :40])
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert np.allclose(std.inverse(z), feats[:, :, :40], atol=1e-3)
    rng_norm = Normalizer.fit_range(feats)
    scaled = rng_norm(feats)
    assert scaled.min() >= -1 and scaled.max() <= 1 and scaled.max() > 0.99
    inside = (feats > -60) & (feats < -20)
    assert np.allclose(rng_norm.inverse(scaled)[inside], feats[inside], atol=1e-3)
    restored = Normalizer.from_state(std.state_dict())
    assert np.allclose(restored(feats), std(feats))
    assert np.array_equal(std(feats[0]), std(feats)[0])  # one clip the same as in a batch
    as_tensor = std(torch.from_numpy(feats))
    assert torch.allclose(as_tensor, torch.from_numpy(std(feats)), atol=1e-5)
    with pytest.raises(ValueError, match="No speech frames"):
        Normalizer.fit_standard(np.full((2, 80, 5), CFG.db_floor))


@pytest.mark.parametrize("chunk", [1, 3, 32])
def test_standard_fit_equals_float64_statistics_of_speech_frames_in_any_chunking(chunk):
    rng = np.random.default_rng(2)
    feats = rng.normal(-40, 10, size=(7, 80, 30)).astype(np.float32)
    feats[:, 5] += 25.0  # one loud band, so the bins differ
    for i, length in enumerate([30, 12, 1, 30, 20, 7, 29]):
        feats[i, :, length:] = CFG.db_floor
    frames = np.concatenate([f[:, f.max(axis=0) > CFG.db_floor + 1].T for f in feats])
    fitted = Normalizer.fit_standard(feats, chunk=chunk)
    # Each clip's sums run in float32 over its T frames (then in float64 over clips): off by at
    # most T eps32 times the sum of |x|, so the mean by T eps32 max|x| and E[x^2] by
    # T eps32 max(x^2); the std = sqrt(E[x^2] - mean^2) moves by that error over twice itself.
    exact = frames.astype(np.float64)
    bound = feats.shape[-1] * EPS32
    mean_atol = bound * np.abs(exact).max()
    var_atol = bound * (exact ** 2).max() + 2 * np.abs(exact.mean(0)).max() * mean_atol
    np.testing.assert_allclose(fitted.shift, exact.mean(0), rtol=0, atol=mean_atol)
    np.testing.assert_allclose(fitted.scale, exact.std(0) + 1e-5, rtol=0,
                               atol=var_atol / (2 * exact.std(0).min()))


def test_per_speaker_normalisation_removes_speaker_offset():
    rng = np.random.default_rng(1)
    feats = rng.normal(0, 5, size=(10, 80, 30)).astype(np.float32)
    actors = [1] * 5 + [2] * 5
    feats[5:] -= 30  # speaker 2 is 30 dB quieter
    norms = fit_per_speaker(feats, actors)
    out = normalize_per_speaker(feats, actors, norms)
    assert set(norms) == {1, 2}
    assert abs(out[:5].mean() - out[5:].mean()) < 0.1


def test_extract_features_caches_and_keys_by_config(tiny_corpus, tmp_path):
    paths = list(load_corpus(tiny_corpus).path)
    cache_dir = tmp_path / "cache"
    first = extract_features(paths, CFG, cache_dir, progress=False)
    assert first.shape == (16, 80, 188)
    assert np.allclose(first[3], log_mel(load_audio(paths[3], CFG), CFG), atol=STFT_DB_ATOL)
    folder = FeatureCache(cache_dir, CFG).dir
    assert folder.name == f"logmel-v{features.FEATURES_VERSION}-{CFG.key()}"
    shards = sorted(folder.glob("shard-*"))
    assert [s.suffix for s in shards] == [".json", ".npy"]
    mtimes = [s.stat().st_mtime_ns for s in shards]
    again = extract_features(paths, CFG, cache_dir, progress=False)
    assert np.array_equal(first, again)
    assert sorted(folder.glob("shard-*")) == shards  # served from the cache, nothing written
    assert [s.stat().st_mtime_ns for s in shards] == mtimes
    other = AudioConfig(n_mels=64)
    assert extract_features(paths, other, cache_dir, progress=False).shape == (16, 64, 188)
    assert FeatureCache(cache_dir, other).dir.is_dir()  # never reuses the 80-mel entries
    assert folder.is_dir()  # nor deletes them


def test_cache_serves_subsets_recomputes_edited_and_damaged(tiny_corpus, tmp_path):
    paths = list(load_corpus(tiny_corpus).path)
    cache = FeatureCache(tmp_path, CFG)
    first = extract_features(paths, CFG, tmp_path, progress=False)
    shard = cache.shard([cache.identity(p) for p in paths])
    # once indexed (with its checksums), the shard is all that is read
    cache.write([cache.identity(p) for p in paths], np.full_like(first, 7.0))
    subset = [paths[9], paths[2]]
    assert np.all(extract_features(paths, CFG, tmp_path, progress=False) == 7.0)
    assert np.all(extract_features(subset, CFG, tmp_path, progress=False) == 7.0)
    assert len(list(cache.dir.glob("shard-*.npy"))) == 1
    write(paths[5], tone(900, 1.0, 22050), 22050)  # an edited file: a new identity
    os.utime(paths[5], ns=(1, 1))
    edited = extract_features(paths, CFG, tmp_path, progress=False)
    assert np.all(np.delete(edited, 5, axis=0) == 7.0)
    assert np.allclose(edited[5], log_mel(load_audio(paths[5], CFG), CFG), atol=STFT_DB_ATOL)
    assert [len(np.load(s)) for s in sorted(cache.dir.glob("shard-*.npy"),
                                             key=lambda s: s.stat().st_mtime_ns)] == [16, 1]
    shard.write_bytes(shard.read_bytes()[:1000])  # a truncated shard: its files are recomputed
    again = extract_features(paths, CFG, tmp_path, progress=False)
    assert np.allclose(again[:5], first[:5], atol=STFT_DB_ATOL)  # recomputed, in other batches
    assert np.array_equal(again[5], edited[5])  # served from the cache
    assert not shard.exists() and not shard.with_suffix(".json").exists()  # dropped


def test_cache_read_write_follow_file_identity(tiny_corpus, tmp_path):
    path = next((tiny_corpus / "Actor_01").iterdir())
    cache = FeatureCache(tmp_path, CFG)
    out = np.zeros((1, 80, 188), np.float32)
    assert not cache.read([cache.identity(path)], out).any()
    cache.write([cache.identity(path)], np.ones((1, 80, 188), np.float32))
    assert cache.read([cache.identity(path)], out).all() and np.all(out == 1.0)
    assert json.loads((cache.dir / "config.json").read_text()) == CFG.to_dict()
    write(path, tone(900, 1.0, 22050), 22050)
    os.utime(path, ns=(1, 1))
    assert not cache.read([cache.identity(path)], np.zeros_like(out)).any()


def test_cache_prunes_shards_that_serve_no_file(tiny_corpus, tmp_path):
    a, b, c = sorted((tiny_corpus / "Actor_01").iterdir())[:3]
    q = tmp_path / "elsewhere" / a.name
    q.parent.mkdir()
    q.write_bytes(a.read_bytes())
    cache = FeatureCache(tmp_path / "cache", CFG)
    rows = np.zeros((2, 80, 188), np.float32)
    cache.write([cache.identity(a), cache.identity(b)], rows)
    s_ab = cache.shard([cache.identity(a), cache.identity(b)])
    cache.write([cache.identity(c)], rows[:1])
    s_c = cache.shard([cache.identity(c)])
    cache.write([cache.identity(q)], rows[:1])
    s_q = cache.shard([cache.identity(q)])
    assert all(s.exists() for s in (s_ab, s_c, s_q))
    q.unlink()  # a missing file keeps its rows
    write(a, tone(900, 1.0, 22050), 22050)  # edited: its old rows serve nothing
    cache.write([cache.identity(a)], rows[:1])
    assert s_ab.exists()  # still serves b
    write(b, tone(950, 1.0, 22050), 22050)
    cache.write([cache.identity(b)], rows[:1])
    assert not s_ab.exists() and not s_ab.with_suffix(".json").exists()
    s_b = cache.shard([cache.identity(b)])
    cache.write([cache.identity(b), cache.identity(c)], np.ones((2, 80, 188), np.float32))
    assert not s_b.exists() and not s_c.exists() and s_q.exists()  # b and c extracted again
    out = np.zeros((3, 80, 188), np.float32)
    assert cache.read([cache.identity(p) for p in (a, b, c)], out).all()
    assert np.all(out[0] == 0.0) and np.all(out[1:] == 1.0)
    assert len(list(cache.dir.glob("shard-*.npy"))) == 3  # q's, a's, and b's and c's


def _same_size_and_times(path, wave, rate):
    """Rewrite the audio file at ``path`` with ``wave``, then put back its size (the same
    number of samples) and access and modification times, as ``cp -p`` or ``rsync -a`` do."""
    before = os.stat(path)
    write(path, wave, rate)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_cache_recomputes_a_file_whose_content_changed_behind_the_same_size_and_mtime(
        tiny_corpus, tmp_path):
    paths = list(load_corpus(tiny_corpus).path)
    first = extract_features(paths, CFG, tmp_path, progress=False)
    rate = sf.info(paths[4]).samplerate
    _same_size_and_times(paths[4], tone(2500, sf.info(paths[4]).duration, rate), rate)
    again = extract_features(paths, CFG, tmp_path, progress=False)
    assert np.array_equal(np.delete(again, 4, axis=0), np.delete(first, 4, axis=0))
    assert not np.allclose(again[4], first[4], atol=1.0)
    assert np.allclose(again[4], log_mel(load_audio(paths[4], CFG), CFG), atol=STFT_DB_ATOL)


def test_cache_keys_on_content_and_hashes_only_files_whose_status_changed(
        tiny_corpus, tmp_path, monkeypatch):
    paths = list(load_corpus(tiny_corpus).path)
    monkeypatch.setattr(features, "RECENT_NS", 0)  # the files were written just now
    hashed = []
    digest = features.file_digest
    monkeypatch.setattr(features, "file_digest", lambda p: hashed.append(p) or digest(p))
    first = extract_features(paths, CFG, tmp_path, progress=False)
    assert len(hashed) == 16 and (tmp_path / features.DIGESTS).is_file()
    hashed.clear()
    shards = sorted(FeatureCache(tmp_path, CFG).dir.glob("shard-*"))
    assert np.array_equal(extract_features(paths, CFG, tmp_path, progress=False), first)
    assert hashed == []  # a re-run reads the digests, not the audio
    os.utime(paths[7], ns=(5, 5))  # touched, not edited: hashed again, and still served
    assert np.array_equal(extract_features(paths, CFG, tmp_path, progress=False), first)
    assert hashed == [os.path.abspath(paths[7])]
    assert sorted(FeatureCache(tmp_path, CFG).dir.glob("shard-*")) == shards


def test_cache_of_older_feature_code_is_never_read_and_deleted(tiny_corpus, tmp_path):
    paths = list(load_corpus(tiny_corpus).path)
    old = FeatureCache(tmp_path, CFG)
    old.dir = tmp_path / f"logmel-{CFG.key()}"  # how version 1 named its folder
    old.write([old.identity(p) for p in paths], np.full((16, 80, 188), 7.0, np.float32))
    unrelated = tmp_path / "logmel-notes"
    unrelated.mkdir()
    fresh = extract_features(paths, CFG, tmp_path, progress=False)
    assert np.allclose(fresh[3], log_mel(load_audio(paths[3], CFG), CFG), atol=STFT_DB_ATOL)
    assert not old.dir.exists() and unrelated.is_dir()
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith("logmel-v")] == \
        [FeatureCache(tmp_path, CFG).dir.name]


def test_batched_extraction_equals_file_by_file(tiny_corpus):
    paths = list(load_corpus(tiny_corpus).path)
    threads = torch.get_num_threads()
    batched = extract_features(paths, CFG, batch_size=3, workers=2, progress=False)
    assert torch.get_num_threads() == threads  # extraction runs on one torch thread, then restores
    one_by_one = np.stack([log_mel(load_audio(path, CFG), CFG) for path in paths])
    np.testing.assert_allclose(batched, one_by_one, rtol=0, atol=STFT_DB_ATOL)


def test_length_sorted_chunks_return_features_in_file_order(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    root = tmp_path / "varied" / "Actor_01"
    root.mkdir(parents=True)
    paths = []
    for k, seconds in enumerate(rng.uniform(0.2, 3.5, 13)):
        paths.append(root / ravdess_name(1 + k % 8, 1, 1 + k // 8, 1, 1))
        sf.write(paths[-1], tone(200.0 + 40 * k, seconds, 16000, lead=0.1), 16000)
    paths[6].write_bytes(b"not audio")
    monkeypatch.setattr(features, "SORT_CHUNK", 5)  # three chunks, decoded while others compute
    with pytest.warns(UserWarning, match=paths[6].name):
        feats, kept = corpus_features(load_corpus(root.parent), CFG, progress=False)
    assert list(kept.path) == [p for p in sorted(paths) if p != paths[6]]
    one_by_one = np.stack([log_mel(load_audio(path, CFG), CFG) for path in kept.path])
    np.testing.assert_allclose(feats, one_by_one, rtol=0, atol=STFT_DB_ATOL)


def test_extract_features_names_bad_file(tiny_corpus, tmp_path):
    paths = list(load_corpus(tiny_corpus).path)
    paths[2].write_bytes(b"not audio")
    with pytest.raises(AudioError, match=paths[2].name):
        extract_features(paths, CFG, tmp_path / "c", progress=False)


@settings(max_examples=15, deadline=None)
@given(seconds=st.floats(0.05, 4.0), rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]))
def test_feature_shapes_for_any_length_and_rate(seconds, rate):
    wave = tone(220, seconds, rate)
    fixed = prepare_waveform(wave, rate, CFG)
    assert fixed.shape == (CFG.n_samples,)
    free = prepare_waveform(wave, rate, CFG, fixed_length=False)
    assert log_mel(free, CFG).shape == (80, 1 + free.size // 256)


@pytest.mark.ravdess
def test_original_and_flac_copies_match(ravdess_original, ravdess_16k):
    originals = load_corpus(ravdess_original)
    stereo = [p for p in originals.path if sf.info(p).channels == 2]
    assert stereo, "the originals include stereo files"
    for path in [*stereo, *originals.path[:3]]:
        flac = ravdess_16k / "Actor_01" / path.name.replace(".wav", ".flac")
        a, b = load_audio(path, CFG), load_audio(flac, CFG)
        assert a.shape == b.shape == (48000,)
        ma, mb = log_mel(a, CFG), log_mel(b, CFG)
        voiced = ma > -60
        assert np.median(np.abs(ma - mb)[voiced]) < 1.0  # same audio within 1 dB


def test_corpus_features_skips_bad_files_and_names_them(tiny_corpus, tmp_path):
    table = load_corpus(tiny_corpus)
    bad = [table.path[2], table.path[9]]
    bad[0].write_bytes(b"not audio")
    sf.write(bad[1], np.array([0.1, np.nan, 0.1], np.float32), 22050, subtype="FLOAT")
    with pytest.warns(UserWarning, match="2 unusable audio file") as record:
        feats, kept = corpus_features(table, CFG, tmp_path / "c", progress=False)
    message = str(record[0].message)
    assert bad[0].name in message and bad[1].name in message and "NaN" in message
    assert feats.shape == (14, 80, 188) and len(kept) == 14
    assert not set(kept.path) & set(bad)
    good = extract_features(list(kept.path), CFG, tmp_path / "c", progress=False)
    assert np.array_equal(feats, good)


def test_reading_never_writes_inside_the_corpus(tiny_corpus, tmp_path):
    def snapshot():
        return sorted((p, p.stat().st_mtime_ns) for p in tiny_corpus.rglob("*"))
    before = snapshot()
    extract_features(list(load_corpus(tiny_corpus).path), CFG, tmp_path / "cache", progress=False)
    assert snapshot() == before


def test_truncated_file_loads_what_is_there(tmp_path):
    path = write(tmp_path / "cut.wav", tone(440, 2.0, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header still claims 2 s
    wave, rate = read_audio(path)
    assert rate == 16000 and 0.9 * 16000 < wave.size < 1.1 * 16000


def test_very_long_and_very_short_files(tmp_path):
    long = write(tmp_path / "long.wav", tone(200, 61.0, 16000), 16000)
    assert load_audio(long, CFG).shape == (CFG.n_samples,)
    short = write(tmp_path / "short.wav", tone(200, 0.2, 16000), 16000)
    wave = load_audio(short, CFG)
    assert wave.shape == (CFG.n_samples,) and np.abs(wave[: 3000]).max() > 0.1
