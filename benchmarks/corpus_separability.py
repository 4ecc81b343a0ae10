"""How separable are the emotions of the embedded corpus? A simple, speaker-independent check.

Per file: mean and std of 40 log-mel bands, F0 statistics (yin on loud frames), RMS statistics,
speech duration, spectral centroid and high-band energy. A standardised logistic regression is
trained on synthetic actors 1-16 and tested on actors 17-24. The corpus should be learnable but
not trivial (roughly 40-85 % for this model); one feature group alone should do much worse.

    python benchmarks/corpus_separability.py                 # make the full corpus in a temp dir
    python benchmarks/corpus_separability.py --corpus DIR    # make DIR, or use the corpus there
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emogan_utils.data import EMOTIONS, CorpusError, load_corpus  # noqa: E402

N_MELS = 40
GROUPS = {"f0": "f0_", "loudness": "rms_", "duration": "dur", "spectrum": "mel_"}


def features(path: str, sample_rate: int = 16000) -> dict[str, float]:
    """Summary acoustic features of one file."""
    import librosa

    y, sr = librosa.load(path, sr=sample_rate)
    speech, (start, end) = librosa.effects.trim(y, top_db=35, frame_length=512, hop_length=128)
    out = {"dur": len(speech) / sr}
    mel = librosa.power_to_db(librosa.feature.melspectrogram(
        y=speech, sr=sr, n_fft=512, hop_length=160, n_mels=N_MELS) + 1e-10)
    out.update({f"mel_mean_{i}": v for i, v in enumerate(mel.mean(axis=1))})
    out.update({f"mel_std_{i}": v for i, v in enumerate(mel.std(axis=1))})
    rms = librosa.feature.rms(y=speech, frame_length=1024, hop_length=160)[0]
    rms_db = 20 * np.log10(rms + 1e-6)
    loud = rms_db > rms_db.max() - 25
    out.update(rms_mean=rms_db[loud].mean(), rms_max=rms_db.max(), rms_std=rms_db[loud].std())
    f0 = librosa.yin(speech, fmin=60, fmax=600, sr=sr, frame_length=1024, hop_length=160)
    n = min(len(f0), len(loud))
    voiced = np.log(f0[:n][loud[:n]])
    tail = voiced[-max(3, len(voiced) // 5):]
    out.update(f0_median=np.median(voiced), f0_p10=np.percentile(voiced, 10),
               f0_p90=np.percentile(voiced, 90), f0_std=voiced.std(),
               f0_end=tail.mean() - np.median(voiced))
    centroid = librosa.feature.spectral_centroid(y=speech, sr=sr, n_fft=512, hop_length=160)[0]
    out["spec_centroid"] = float(np.mean(centroid[loud[:len(centroid)]]))
    power = np.abs(librosa.stft(speech, n_fft=512, hop_length=160)) ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=512)
    out["spec_high"] = float(10 * np.log10(power[freqs > 2000].sum() / power.sum()))
    return out


def table(corpus: Path, workers: int) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Features (files x features), their names, labels and actors of every file."""
    files = load_corpus(corpus)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(features, files["path"].astype(str), chunksize=16))
    names = list(rows[0])
    x = np.array([[r[k] for k in names] for r in rows], dtype=np.float64)
    return x, names, files["label"].to_numpy(), files["actor"].to_numpy()


def fit_score(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> tuple[float, np.ndarray]:
    """Held-out accuracy and predictions of a standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=5000))
    model.fit(x[train], y[train])
    pred = model.predict(x[~train])
    return float(np.mean(pred == y[~train])), pred


def report(x: np.ndarray, names: list[str], y: np.ndarray, actors: np.ndarray) -> float:
    """Print accuracy, confusion matrix, per-emotion recall and single-group accuracies."""
    from sklearn.metrics import confusion_matrix

    train = actors <= 16
    acc, pred = fit_score(x, y, train)
    cm = confusion_matrix(y[~train], pred, labels=range(len(EMOTIONS)))
    short = [e[:4] for e in EMOTIONS]
    print(f"\nLogistic regression, train actors 1-16 ({train.sum()} files), "
          f"test actors {actors[~train].min()}-{actors[~train].max()} ({(~train).sum()} files)")
    print(f"accuracy: {acc:.1%}   (chance {1 / len(EMOTIONS):.1%}, majority "
          f"{np.bincount(y[~train]).max() / (~train).sum():.1%})\n")
    print("confusion matrix (rows: true, columns: predicted)")
    print("          " + " ".join(f"{s:>5}" for s in short))
    for name, row in zip(EMOTIONS, cm):
        print(f"{name:>9} " + " ".join(f"{v:5d}" for v in row))
    print("\nrecall per emotion")
    for name, row, i in zip(EMOTIONS, cm, range(len(EMOTIONS))):
        print(f"  {name:>9}: {row[i] / row.sum():.0%}")
    print("\none feature group alone")
    for group, prefix in GROUPS.items():
        cols = [i for i, n in enumerate(names) if n.startswith(prefix)]
        print(f"  {group:>9} ({len(cols):2d} features): {fit_score(x[:, cols], y, train)[0]:.1%}")
    return acc


def ready(corpus: Path, seed: int, workers: int) -> None:
    """Make the embedded corpus in ``corpus``, or use the RAVDESS-format corpus already there."""
    from emogan_utils.synth import make_corpus

    started = time.perf_counter()
    try:
        make_corpus(corpus, seed=seed, workers=workers)
    except CorpusError as err:
        if not any(corpus.rglob("*.wav")) and not any(corpus.rglob("*.flac")):
            raise
        print(f"using the RAVDESS-format corpus already in {corpus} as it is ({type(err).__name__}"
              f" from make_corpus: not an embedded corpus with these parameters)")
        return
    print(f"embedded corpus {corpus}: ready in {time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, make or find the corpus, and report its separability."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="corpus folder (made there if empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emogan_corpus_") as tmp:
        corpus = args.corpus or Path(tmp) / "corpus"
        ready(corpus, args.seed, args.workers)
        started = time.perf_counter()
        x, names, y, actors = table(corpus, args.workers)
        print(f"features: {x.shape[1]} per file, {len(y)} files, "
              f"{time.perf_counter() - started:.1f} s")
        report(x, names, y, actors)


if __name__ == "__main__":
    main()
