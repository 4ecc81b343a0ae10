"""Back to audio: log-mel (dB) to waveform with Griffin-Lim, and spectral convergence.

The path is the exact inverse of :class:`~emogan_utils.features.LogMel` step by step:
dB -> mel power (:func:`~emogan_utils.features.db_to_power`) -> linear power by least squares
through the same Slaney filterbank (``torchaudio.transforms.InverseMelScale``) -> magnitude
(square root) -> phase by fast Griffin-Lim (momentum, zero-phase start so results repeat).
Denormalising model outputs (``Normalizer.inverse``) is the caller's job, before this.

:func:`reconstruct` runs a real waveform through log-mel and back without any model: listening
to it tells Griffin-Lim's own artefacts apart from a GAN's.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio

from emogan_utils.features import AudioConfig, LogMel, MelFilterbank, db_to_power, stft
from emogan_utils.threads import map_batch


class MelInverter(torch.nn.Module):
    """Log-mel in dB ``(..., n_mels, frames)`` to waveform ``(..., samples)``.

    Mel power to linear power is a non-negative least-squares problem, as in librosa's
    ``mel_to_stft``. ``InverseMelScale`` (torchaudio 2.11: one batched ``torch.linalg.lstsq``,
    minimum-norm, then ReLU; no SGD loop any more) is cheap, but its minimum-norm solution smears
    a harmonic over the whole mel filter. ``nnls_iter`` multiplicative updates (Lee & Seung)
    started from it keep the power non-negative, never increase the squared error and
    re-concentrate the energy (spectral convergence 0.32 with them, 0.39 without). They run in
    place, through the blocked filterbank (:class:`~emogan_utils.features.MelFilterbank`).
    Timings against librosa: docs/performance.md.
    """

    def __init__(self, config: AudioConfig = AudioConfig(), n_iter: int = 32,
                 momentum: float = 0.99, length: int | None = None, nnls_iter: int = 30):
        super().__init__()
        self.config = config
        self.nnls_iter = nnls_iter
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=config.n_fft // 2 + 1, n_mels=config.n_mels, sample_rate=config.sample_rate,
            f_min=config.f_min, f_max=config.f_max, norm="slaney", mel_scale="slaney")
        self.filterbank = MelFilterbank(config)
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=config.n_fft, n_iter=n_iter, hop_length=config.hop_length, power=1.0,
            momentum=momentum, length=length, rand_init=False)

    def linear_power(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Non-negative linear power ``(..., n_fft // 2 + 1, frames)`` whose mel is ``mel_power``."""
        # Zeros never move under multiplicative updates: start every bin at least at the dB floor.
        power = self.inverse_mel(mel_power).clamp_min(10.0 ** (self.config.db_floor / 10.0))
        # The updates run on (..., frames, freq), the layout the blocked filterbank reads.
        power = power.transpose(-1, -2).contiguous()
        fb = self.filterbank
        target = fb.transpose(mel_power.transpose(-1, -2))
        for _ in range(self.nnls_iter):
            estimate = fb.transpose(fb(power)).clamp_min_(1e-30)  # of target
            power.mul_(target).div_(estimate)
        return power.transpose(-1, -2)

    def invert(self, mel_db: torch.Tensor) -> torch.Tensor:
        """The whole inversion of a batch, on the calling thread."""
        return self.griffin_lim(self.linear_power(db_to_power(mel_db)).sqrt())

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        """:meth:`invert`; a batch on a CPU is spread over one worker thread per torch thread
        (:func:`~emogan_utils.threads.map_batch`), which gives the same waveforms up to float
        rounding and was faster than torch's intra-op threads (docs/performance.md)."""
        batch = mel_db.reshape(-1, *mel_db.shape[-2:])
        wave = map_batch(self.invert, batch)
        return wave.reshape(*mel_db.shape[:-2], wave.shape[-1])


@functools.lru_cache(maxsize=16)
def _inverter(config: AudioConfig, n_iter: int, momentum: float, length: int | None,
              nnls_iter: int, device: torch.device) -> MelInverter:
    """One :class:`MelInverter` per setting and device, built once (filterbank, window)."""
    return MelInverter(config, n_iter, momentum, length, nnls_iter).to(device)


def griffin_lim(mel_db: np.ndarray | torch.Tensor, config: AudioConfig = AudioConfig(),
                n_iter: int = 32, momentum: float = 0.99,
                length: int | None = None, nnls_iter: int = 30) -> torch.Tensor:
    """Waveform(s) from log-mel(s) in dB, ``(n_mels, T)`` or ``(B, n_mels, T)``, on their device.

    Without ``length`` the output has ``(T - 1) * hop_length`` samples. See :class:`MelInverter`
    for ``nnls_iter``.
    """
    mel_db = torch.as_tensor(mel_db, dtype=torch.float32)
    if mel_db.ndim not in (2, 3) or mel_db.shape[-2] != config.n_mels:
        raise ValueError(f"griffin_lim expects (n_mels={config.n_mels}, T) or (B, n_mels, T) "
                         f"log-mels, got shape {tuple(mel_db.shape)}")
    with torch.no_grad():
        return _inverter(config, n_iter, momentum, length, nnls_iter, mel_db.device)(mel_db)


def reconstruct(wave: np.ndarray | torch.Tensor, config: AudioConfig = AudioConfig(),
                n_iter: int = 32) -> torch.Tensor:
    """Waveform(s) -> log-mel -> :func:`griffin_lim`, same length: the no-model reference."""
    wave = torch.as_tensor(wave, dtype=torch.float32)
    with torch.no_grad():
        mel_db = LogMel(config).to(wave.device)(wave)
    return griffin_lim(mel_db, config, n_iter=n_iter, length=wave.shape[-1])


def stft_magnitude(wave: np.ndarray | torch.Tensor,
                   config: AudioConfig = AudioConfig()) -> torch.Tensor:
    """``|STFT|`` ``(..., n_fft // 2 + 1, frames)`` with the same framing as :class:`LogMel`."""
    return stft(torch.as_tensor(wave, dtype=torch.float32), config).abs()


def spectral_convergence(reference_mag: np.ndarray | torch.Tensor,
                         estimate_mag: np.ndarray | torch.Tensor) -> float:
    """``||ref - est||_F / ||ref||_F`` of two magnitude spectrograms: 0 is perfect."""
    reference = torch.as_tensor(reference_mag, dtype=torch.float64)
    estimate = torch.as_tensor(estimate_mag, dtype=torch.float64, device=reference.device)
    if reference.shape != estimate.shape:
        raise ValueError(f"spectral_convergence needs equal shapes, got {tuple(reference.shape)} "
                         f"and {tuple(estimate.shape)}")
    norm = torch.linalg.vector_norm(reference)
    if norm == 0:
        raise ValueError("spectral_convergence: the reference spectrogram is all zeros")
    return float(torch.linalg.vector_norm(reference - estimate) / norm)


def waveform_spectral_convergence(reference_wave: np.ndarray | torch.Tensor,
                                  estimate_wave: np.ndarray | torch.Tensor,
                                  config: AudioConfig = AudioConfig()) -> float:
    """:func:`spectral_convergence` of two waveforms' STFT magnitudes, cut to the shorter one."""
    reference = torch.as_tensor(reference_wave, dtype=torch.float32)
    estimate = torch.as_tensor(estimate_wave, dtype=torch.float32, device=reference.device)
    n = min(reference.shape[-1], estimate.shape[-1])
    return spectral_convergence(stft_magnitude(reference[..., :n], config),
                                stft_magnitude(estimate[..., :n], config))
