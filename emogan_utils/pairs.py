"""Parallel pairs for the GAN: every two recordings of one actor, statement and repetition in
different emotions, DTW-aligned once on their MFCCs, and :class:`ParallelSet`, which holds the
normalised log-mels and serves (source, aligned target) batches in random crops."""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from emogan_utils.features import Normalizer


@dataclass
class ParallelSet:
    """Range-normalised log-mels of a parallel corpus and every cross-emotion pair of them.

    ``pairs[k] = (source, target)`` are two recordings of the same actor, statement and
    repetition in different emotions; ``alignment[k, i]`` is the target frame DTW matched to
    source frame ``i``, so ``mels[target][:, alignment[k]]`` follows the source's timing.
    """

    mels: torch.Tensor
    labels: torch.Tensor
    pairs: torch.Tensor
    alignment: torch.Tensor

    def aligned_target(self, index: torch.Tensor) -> torch.Tensor:
        """The real targets of pairs ``index`` warped onto their sources' timelines."""
        targets = self.mels[self.pairs[index, 1]]
        gather = self.alignment[index].unsqueeze(1).expand(-1, targets.shape[1], -1)
        return targets.gather(2, gather)

    def batch(self, index: torch.Tensor, crop: int | None,
              rng: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """(source, source label, target label, aligned target) for pairs ``index``, cropped."""
        source, target = self.pairs[index, 0], self.pairs[index, 1]
        x, y = self.mels[source], self.aligned_target(index)
        frames = x.shape[-1]
        if crop is not None and crop < frames:
            start = torch.randint(0, frames - crop + 1, (len(index), 1), generator=rng)
            cols = (start + torch.arange(crop)).unsqueeze(1).expand(-1, x.shape[1], -1)
            x, y = x.gather(2, cols), y.gather(2, cols)
        return x, self.labels[source], self.labels[target], y


def mfcc_for_alignment(mel_db: np.ndarray) -> np.ndarray:
    """MFCCs 1-19 of a dB log-mel: timbre without loudness, what DTW should match on."""
    return librosa.feature.mfcc(S=mel_db, n_mfcc=20)[1:]


def dtw_alignment(source_mfcc: np.ndarray, target_mfcc: np.ndarray) -> np.ndarray:
    """For each source frame, the index of the target frame DTW pairs it with (the last one)."""
    _, path = librosa.sequence.dtw(X=source_mfcc, Y=target_mfcc, backtrack=True)
    index = np.zeros(source_mfcc.shape[1], dtype=np.int64)
    index[path[::-1, 0]] = path[::-1, 1]
    return index


def parallel_pairs(table: pd.DataFrame) -> np.ndarray:
    """Row pairs ``(P, 2)`` of the same (actor, statement, repetition) in different emotions."""
    pairs = []
    for _, group in table.groupby(["actor", "statement_id", "repetition"], sort=True):
        rows, labels = group.index.to_numpy(), group["label"].to_numpy()
        pairs += [(a, b) for a, la in zip(rows, labels) for b, lb in zip(rows, labels) if la != lb]
    if not pairs:
        raise ValueError("No parallel pairs: the corpus needs the same actor, statement and "
                         "repetition recorded in at least two emotions")
    return np.asarray(pairs, dtype=np.int64)


def parallel_set(table: pd.DataFrame, mel_db: np.ndarray, normalizer: Normalizer,
                 progress: bool = True) -> ParallelSet:
    """Normalise ``mel_db`` (rows of ``table``) and DTW-align every parallel pair once."""
    table = table.reset_index(drop=True)
    pairs = parallel_pairs(table)
    mfcc = [mfcc_for_alignment(m) for m in mel_db]
    alignment = np.stack([dtw_alignment(mfcc[a], mfcc[b])
                          for a, b in tqdm(pairs, desc="DTW", unit="pair", disable=not progress)])
    return ParallelSet(mels=torch.as_tensor(normalizer(mel_db), dtype=torch.float32),
                       labels=torch.tensor(table["label"].to_numpy(), dtype=torch.long),
                       pairs=torch.from_numpy(pairs), alignment=torch.from_numpy(alignment))
