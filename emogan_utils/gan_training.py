"""Training the conditional GAN: its settings (:class:`GANTrainConfig`), the networks with
their optimisers (:func:`build_gan`), one training step (:func:`gan_step`), validation on
aligned real targets, the training loop on parallel pairs (:func:`fit_gan`, resumable and
under ``torchrun``) and training on a corpus (:func:`train_gan`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emogan_utils import distributed
from emogan_utils.checkpoint import (check_resumable, load_checkpoint, load_weights,
                                     resumable_config, run_data, save_checkpoint)
from emogan_utils.config import check_settings
from emogan_utils.data import (EMOTIONS, Sources, held_out_split, load_corpus, source_label,
                               training_labels, training_speakers)
from emogan_utils.features import AudioConfig, Normalizer, corpus_features
from emogan_utils.losses import check_finite, lsgan_loss, paired_l1
from emogan_utils.models import (DiscriminatorConfig, GeneratorConfig, PatchDiscriminator,
                                 UNetGenerator, emotion_code)
from emogan_utils.pairs import ParallelSet, parallel_set
from emogan_utils.prosody import fit_emotion_prosody
from emogan_utils.runtime import (amp_dtype, autocast, grad_scaler, pick_device, random_state,
                                  restore_random_state, seed_everything)


@dataclass(frozen=True)
class GANTrainConfig:
    """Everything that shapes a conditional-GAN run; saved in (and checked against) its checkpoint.

    Losses (LSGAN): adversarial, target-emotion classification of fakes by the discriminator's
    auxiliary head, cycle consistency (source -> target -> source), identity (target = source
    emotion) and, because RAVDESS is parallel, L1 to the DTW-aligned real target recording
    (``w_paired``; 0 gives the unpaired StarGAN-VC setting).
    """

    epochs: int = 30
    batch_size: int = 8
    pairs_per_epoch: int | None = None
    """Parallel pairs drawn per epoch; None = one per training file."""
    crop_frames: int = 64
    """Random crops in time (same crop of source and aligned target) to save compute."""
    lr_g: float = 5e-4
    lr_d: float = 2e-4
    lr_final: float = 0.1
    """Cosine decay, per step, down to this fraction of the initial learning rates."""
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-4
    w_adv: float = 1.0
    w_cls: float = 1.0
    """Emotion classification of reals (discriminator) and of fakes (generator): higher converts
    more strongly, lower stays closer to how the speaker really sounds. 1 was chosen on
    validation actors (docs/results.md, "How the translation settings were chosen";
    benchmarks/translation_ravdess.py --cls-weight)."""
    w_cycle: float = 5.0
    w_identity: float = 2.0
    w_paired: float = 10.0
    """L1 loss to the time-aligned real target. On by default: without it conversions were far
    less often heard as the target (docs/results.md, "How the translation settings were
    chosen")."""
    paired_cepstra: int | None = 20
    """Compare fake and aligned real target on their first K mel-cepstral coefficients (the
    spectral envelope) instead of on every mel bin (None). The aligned target speaks at another
    pitch, so bin by bin the loss asked the generator to paint the target's harmonics onto the
    source's (docs/results.md, "How the translation settings were chosen")."""
    amp: bool = False
    """Mixed precision (:func:`~emogan_utils.runtime.amp_dtype`): faster
    (docs/performance.md), off until its effect on quality is measured."""
    seed: int = 0
    device: str | None = None
    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()

    def __post_init__(self) -> None:
        tiny = 1e-12  # learning rates must be positive
        check_settings({"epochs": (self.epochs, 1), "batch_size": (self.batch_size, 1),
                        "pairs_per_epoch": (self.pairs_per_epoch or 1, 1),
                        "lr_g": (self.lr_g, tiny), "lr_d": (self.lr_d, tiny),
                        "lr_final": (self.lr_final, 0), "weight_decay": (self.weight_decay, 0),
                        **{name: (getattr(self, name), 0) for name in
                           ("w_adv", "w_cls", "w_cycle", "w_identity", "w_paired")}},
                       "GAN training: ")
        if self.paired_cepstra is not None and not 1 <= self.paired_cepstra <= self.generator.n_mels:
            raise ValueError(f"paired_cepstra must be None or 1..{self.generator.n_mels}, "
                             f"got {self.paired_cepstra}")

    @classmethod
    def quick(cls, **changes) -> "GANTrainConfig":
        """Few short epochs for a laptop CPU (a few minutes): audible but far from converged."""
        return cls(**{"epochs": 5, "pairs_per_epoch": 768, "lr_g": 1e-3, "lr_d": 4e-4,
                      **changes})

    def to_dict(self) -> dict:
        return asdict(self)

    def for_audio(self, audio: AudioConfig) -> "GANTrainConfig":
        """These settings with both networks sized for ``audio``'s log-mels."""
        return replace(self, generator=replace(self.generator, n_mels=audio.n_mels),
                       discriminator=replace(self.discriminator, n_mels=audio.n_mels))


@dataclass
class GANParts:
    """The two networks, their optimisers, schedulers and gradient scalers."""

    generator: UNetGenerator
    discriminator: PatchDiscriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler

    def state(self) -> dict[str, dict]:
        """State dicts for :func:`save_checkpoint` (scalers are stateless unless fp16)."""
        return {"generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict()}

    def load(self, path: Path, state: dict[str, dict]) -> None:
        """Load every part from the checkpoint at ``path``'s ``state``."""
        for part in fields(self):
            load_weights(path, getattr(self, part.name), state, part.name)


def build_gan(config: GANTrainConfig, device: torch.device, total_steps: int) -> GANParts:
    """Fresh networks (seeded by the caller), AdamW optimisers and cosine schedules."""
    generator = UNetGenerator(config.generator).to(device)
    discriminator = PatchDiscriminator(config.discriminator).to(device)
    opt_g = torch.optim.AdamW(generator.parameters(), lr=config.lr_g, betas=config.betas,
                              weight_decay=config.weight_decay)
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=config.lr_d, betas=config.betas,
                              weight_decay=config.weight_decay)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR
    dtype = amp_dtype(device, config.amp)
    return GANParts(generator, discriminator, opt_g, opt_d,
                    cosine(opt_g, total_steps, eta_min=config.lr_g * config.lr_final),
                    cosine(opt_d, total_steps, eta_min=config.lr_d * config.lr_final),
                    grad_scaler(device, dtype), grad_scaler(device, dtype))


def gan_step(parts: GANParts, batch: Sequence[torch.Tensor], config: GANTrainConfig,
             dtype: torch.dtype | None,
             nets: tuple[nn.Module, nn.Module] | None = None) -> dict[str, float]:
    """One discriminator update, then one generator update; returns the loss terms. ``nets``
    are the generator and discriminator to run (their DDP wrappers under ``torchrun``)."""
    G, D = nets or (parts.generator, parts.discriminator)
    device = next(G.parameters()).device
    x, source, target, aligned = (t.to(device) for t in batch)
    n = config.generator.n_emotions
    code_s, code_t = emotion_code(source, n), emotion_code(target, n)
    cross_entropy = nn.functional.cross_entropy

    with autocast(device, dtype):
        with torch.no_grad():
            fake = G(x, code_t)
        real_adv, real_cls = D(x)
        fake_adv, _ = D(fake)
        d_adv = lsgan_loss(real_adv, True) + lsgan_loss(fake_adv, False)
        d_cls = cross_entropy(real_cls.float(), source)
        loss_d = config.w_adv * d_adv + config.w_cls * d_cls
    parts.opt_d.zero_grad(set_to_none=True)
    parts.scaler_d.scale(loss_d).backward()
    parts.scaler_d.step(parts.opt_d)
    parts.scaler_d.update()

    with autocast(device, dtype):
        fake = G(x, code_t)
        fake_adv, fake_cls = D(fake)
        terms = {"g_adv": lsgan_loss(fake_adv, True),
                 "g_cls": cross_entropy(fake_cls.float(), target),
                 "cycle": (G(fake, code_s).float() - x).abs().mean(),
                 "identity": (G(x, code_s).float() - x).abs().mean(),
                 "paired": paired_l1(fake.float(), aligned, config.paired_cepstra)}
        weights = {"g_adv": config.w_adv, "g_cls": config.w_cls, "cycle": config.w_cycle,
                   "identity": config.w_identity, "paired": config.w_paired}
        loss_g = sum(weights[k] * v for k, v in terms.items() if weights[k])
    parts.opt_g.zero_grad(set_to_none=True)
    parts.scaler_g.scale(loss_g).backward()
    parts.scaler_g.step(parts.opt_g)
    parts.scaler_g.update()
    parts.sched_g.step()
    parts.sched_d.step()
    return {"loss_d": loss_d.item(), "d_adv": d_adv.item(), "d_cls": d_cls.item(),
            "loss_g": loss_g.item(), **{k: v.item() for k, v in terms.items()}}


def validate_gan(generator: UNetGenerator, data: ParallelSet, batch_size: int = 32) -> dict[str, float]:
    """Mean L1 (normalised units) of converted vs aligned real target, and of the source vs it.

    One pair per source file (its first), whole clips; the gap between the two numbers is how
    much closer to the real target emotion the conversion gets.
    """
    device = next(generator.parameters()).device
    _, first = np.unique(data.pairs[:, 0].numpy(), return_index=True)
    index = torch.from_numpy(first)
    converted = source = 0.0
    generator.eval()
    with torch.no_grad():
        for chunk in index.split(batch_size):
            x, _, t, y = (v.to(device) for v in data.batch(chunk, crop=None))
            fake = generator(x, emotion_code(t, generator.config.n_emotions))
            converted += (fake - y).abs().mean(dim=(1, 2)).sum().item()
            source += (x - y).abs().mean(dim=(1, 2)).sum().item()
    generator.train()
    return {"val_l1": converted / len(index), "val_l1_source": source / len(index)}


def fit_gan(train: ParallelSet, checkpoint: str | os.PathLike, normalizer: Normalizer,
            config: GANTrainConfig = GANTrainConfig(), audio: AudioConfig = AudioConfig(),
            val: ParallelSet | None = None, resume: bool = False, stop_after: int | None = None,
            extra: dict | None = None, progress: bool = True,
            data: dict | None = None, labels: Sequence[str] = EMOTIONS) -> dict[str, list[float]]:
    """Train the conditional GAN, saving a checkpoint after every epoch; returns loss history.

    ``resume=True`` continues from ``checkpoint`` (weights, optimisers, schedules and random
    states), ending where an uninterrupted run would; it refuses a checkpoint made with other
    settings or other ``data`` (what the run trains on, saved in its ``extra``: actors, corpus
    fingerprint). ``stop_after`` ends this call after that many epochs, e.g. to spread a long
    run over sessions. ``labels`` name the conditioning's emotions, in order (the checkpoint
    keeps them).

    Under ``torchrun`` each process trains on its shard of every epoch's pairs (``batch_size``
    and ``pairs_per_epoch`` are global), gradients are averaged, and rank 0 validates and
    writes ``checkpoint``.
    """
    checkpoint = Path(checkpoint)
    config = config.for_audio(audio)
    device = distributed.start(pick_device(config.device))
    data_rng = seed_everything(config.seed)
    n_pairs = min(config.pairs_per_epoch or len(train.mels), len(train.pairs))
    batch_size = distributed.per_rank_batch(config.batch_size)
    steps = -(-(n_pairs // distributed.world_size()) // batch_size)
    parts = build_gan(config, device, steps * config.epochs)
    # instance norm only, so prepare() keeps the modules the optimisers were made of
    parts.generator, g_net = distributed.prepare(parts.generator, device)
    parts.discriminator, d_net = distributed.prepare(parts.discriminator, device)
    dtype = amp_dtype(device, config.amp)
    history: dict[str, list[float]] = {}
    start = 0
    if resume and checkpoint.exists():
        saved = load_checkpoint(checkpoint, kind="gan", audio=audio)
        check_resumable(checkpoint, saved, resumable_config(config.to_dict()), "GAN", data)
        parts.load(checkpoint, saved["state"])
        history, start = saved["extra"]["history"], saved["extra"]["epoch"]
        restore_random_state(data_rng, saved["extra"]["rng"])
    end = config.epochs if stop_after is None else min(config.epochs, start + stop_after)
    for epoch in range(start, end):
        order = distributed.shard(torch.randperm(len(train.pairs), generator=data_rng)[:n_pairs])
        sums: dict[str, float] = {}
        bar = tqdm(order.split(batch_size), desc=f"GAN epoch {epoch + 1}/{config.epochs}",
                   unit="batch", disable=not progress or not distributed.is_main(),
                   leave=False, mininterval=2.0)
        for index in bar:
            losses = gan_step(parts, train.batch(index, config.crop_frames, data_rng), config,
                              dtype, (g_net, d_net))
            check_finite(losses, epoch + 1, checkpoint if epoch > 0 else None)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v / steps
            # refresh=False: a forced redraw per step floods a notebook's output channel
            bar.set_postfix(d=f"{losses['loss_d']:.3f}", g=f"{losses['loss_g']:.3f}", refresh=False)
        totals = distributed.sum_over_ranks(list(sums.values()), device)
        sums = {k: v / distributed.world_size() for k, v in zip(sums, totals)}
        if val is not None and distributed.is_main():
            sums.update(validate_gan(parts.generator, val))
        for k, v in sums.items():
            history.setdefault(k, []).append(v)
        if not distributed.is_main():
            continue  # rank 0 writes the checkpoint
        save_checkpoint(checkpoint, kind="gan", labels=labels,
                        model_config={"generator": asdict(config.generator),
                                      "discriminator": asdict(config.discriminator)},
                        state=parts.state(), audio=audio, normalizer=normalizer,
                        extra={**(extra or {}), **(data or {}), "history": history,
                               "epoch": epoch + 1,
                               "train_config": config.to_dict(),
                               "rng": random_state(data_rng)})
    return history


def train_gan(data: Sources, checkpoint: str | os.PathLike,
              config: GANTrainConfig = GANTrainConfig(),
              train_actors: Sequence[int | str] | None = None,
              val_actors: Sequence[int | str] = (), audio: AudioConfig = AudioConfig(),
              cache_dir: str | os.PathLike | None = None, resume: bool = False,
              stop_after: int | None = None, progress: bool = True,
              allow_new_emotions: bool = False) -> dict[str, list[float]]:
    """Train the GAN on a parallel corpus (folder or manifest, or several read as one table by
    :func:`~emogan_utils.data.load_corpora`): features, range normaliser, DTW
    pairs of each speaker's utterance in two emotions, fit; conditioned on the corpus's emotions.

    ``val_actors`` defaults to a manifest's ``val`` speakers; ``train_actors`` to its ``train``
    speakers, else every actor neither in ``val_actors`` nor a manifest's ``test`` speakers
    (actor numbers or speaker names: :func:`~emogan_utils.data.select_actors`). The range
    normaliser and
    each emotion's prosody change (:func:`~emogan_utils.prosody.fit_emotion_prosody`, applied
    after the generator by :class:`~emogan_utils.inference.Translator`) are fitted on the
    training actors only and saved in the checkpoint. A manifest's emotions outside the known
    ones are refused unless ``allow_new_emotions`` (:func:`~emogan_utils.data.read_manifest`).
    """
    table = load_corpus(data, allow_new_emotions=allow_new_emotions)
    source = source_label(data)
    labels = training_labels(table, source)
    distributed.start(pick_device(config.device))
    progress = progress and distributed.is_main()
    config = replace(config, generator=replace(config.generator, n_emotions=len(labels)),
                     discriminator=replace(config.discriminator, n_emotions=len(labels)))
    train_actors, val_actors = held_out_split(table, val_actors, train_actors, source)
    parts = {}
    distributed.others_wait()  # rank 0 extracts the features first; the others read its cache
    for name, chosen in (("train", train_actors), ("val", val_actors)):
        rows = table[table["actor"].isin(chosen)].reset_index(drop=True)
        if len(rows):
            mel, rows = corpus_features(rows, audio, cache_dir, progress)  # skips bad files
            parts[name] = (rows, mel)
        else:
            parts[name] = (rows, None)
    distributed.main_done()
    normalizer = Normalizer.fit_range(parts["train"][1], audio.db_floor)
    prosody = fit_emotion_prosody(parts["train"][0], audio, progress=progress)
    train_set = parallel_set(*parts["train"], normalizer, progress)
    val_set = parallel_set(*parts["val"], normalizer, progress) if val_actors else None
    return fit_gan(train_set, checkpoint, normalizer, config, audio, val_set, resume, stop_after,
                   extra={"prosody": prosody.state_dict(),
                          **training_speakers(table, train_actors, val_actors)},
                   progress=progress,
                   data=run_data(table, data, train_actors, val_actors, labels), labels=labels)

