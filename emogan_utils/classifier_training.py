"""Training the emotion classifier: its settings (:class:`ClassifierTrainConfig`), SpecAugment,
the training loop on normalised log-mels (:func:`fit_classifier`, resumable and under
``torchrun``), training on a corpus speaker-independently (:func:`train_classifier`, an
ensemble of seeds if asked, and the eGeMAPS branch if asked: :func:`fit_functionals`) and saving
the result as a ``classifier`` checkpoint."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import nn
from tqdm.auto import tqdm

from emogan_utils import distributed
from emogan_utils.checkpoint import (check_resumable, load_checkpoint, load_weights,
                                     resumable_config, run_data, save_checkpoint)
from emogan_utils.config import check_settings
from emogan_utils.data import (EMOTIONS, Sources, Split, load_corpus, manifest_actors,
                               manifest_split, select_actors, source_label, speaker_ids,
                               training_labels, validation_actors)
from emogan_utils.egemaps import centred, corpus_egemaps
from emogan_utils.features import AudioConfig, Normalizer, speech_level_db
from emogan_utils.inputs import (NORM_MODES, corpus_inputs, input_channels, level_matched,
                                 standardize)
from emogan_utils.losses import check_finite, classifier_loss
from emogan_utils.models import (ClassifierConfig, EmotionClassifier, EnsembleClassifier,
                                 FunctionalsClassifier, FunctionalsConfig, batched_logits)
from emogan_utils.runtime import (amp_dtype, autocast, grad_scaler, pick_device, random_state,
                                  restore_random_state, seed_everything)


@dataclass
class ClassifierTrainConfig:
    """Every training technique of the classifier, each switchable. The field defaults are what
    ``train-classifier`` trains, the best settings measured on RAVDESS's tuning actors
    (docs/results.md, "Recognition: settings chosen on tuning actors"): a small model reading
    log-mels and the prosody tracks, 30 epochs on the clips at speeds 0.9, 1 and 1.1, a
    quarter of them shown as single clips, against an adversarial speaker head of weight 0.3,
    two seeds averaged. :meth:`quick` overrides a
    few of them for a demonstration."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    """AdamW decoupled weight decay; 0 turns it off."""
    plateau_patience: int | None = 2
    """ReduceLROnPlateau on validation loss: epochs without improvement; None turns it off."""
    plateau_factor: float = 0.5
    early_stopping: int | None = None
    """Stop after this many epochs without a better validation accuracy; None trains all epochs."""
    amp: bool = False
    """Mixed precision: fp16 + GradScaler on CUDA, bf16 autocast on CPU."""
    freq_masks: int = 2
    freq_mask_param: int = 10
    time_masks: int = 2
    time_mask_param: int = 20
    time_shift: int = 20
    """Largest random circular shift along time, in frames; 0 turns it off."""
    mixup: float = 0.0
    """Beta(alpha, alpha) mixup of batch pairs; 0 turns it off."""
    label_smoothing: float = 0.0
    """Cross-entropy target smoothing: keeps the model from overconfidence on training actors."""
    norm_mode: str = "speaker"
    prosody: bool = True
    """Read the prosody tracks (log-F0, voicing, energy: :mod:`emogan_utils.inputs`) under the
    log-mels."""
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    """Speed perturbation: the training clips once sped up by each factor (each copy of an
    actor standardised as a speaker of its own); validation is at 1 only."""
    single_clip: float = 0.25
    """Share of the training examples shown, each time they are drawn, as a single clip of an
    unknown speaker is judged (:func:`~emogan_utils.inference.judge`): scaled to the training
    clips' median speech level (:func:`~emogan_utils.inputs.level_matched`) and standardised
    with the training statistics instead of their speaker's. 0 trains on per-speaker
    statistics alone. A quarter kept the accuracy with all of a speaker's clips and raised
    that of single clips from 41 to 64 % on the tuning actors (docs/results.md)."""
    speaker_adversary: float = 0.3
    """Weight of the gradient reversal behind an adversarial head that learns which training
    speaker (each sped-up copy its own) a clip is from, so that the model unlearns speaker
    identity; 0 turns it off. Only :func:`train_classifier` knows the speakers."""
    egemaps: bool = False
    """Also train the eGeMAPS branch (:class:`~emogan_utils.models.FunctionalsClassifier`)
    on each clip's 88 functionals, centred per speaker; where a clip's speaker statistics are
    known (all their clips, or enrolled) its probabilities are averaged with the CNN's.
    Extracting the functionals costs about 0.1 s a clip, once (cached)."""
    ensemble: int = 2
    """Models trained with seeds ``seed``, ``seed + 1``, ...; their probabilities are averaged."""
    seed: int = 0
    device: str | None = None
    progress: bool = True
    model: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self) -> None:
        check_settings({"epochs": (self.epochs, 1), "batch_size": (self.batch_size, 2),
                        "lr": (self.lr, 1e-12), "weight_decay": (self.weight_decay, 0),
                        "mixup": (self.mixup, 0), "label_smoothing": (self.label_smoothing, 0),
                        "single_clip": (self.single_clip, 0),
                        "speaker_adversary": (self.speaker_adversary, 0)},
                       "classifier training: ")
        if self.norm_mode not in NORM_MODES:
            raise ValueError(f"norm_mode must be one of {NORM_MODES}, got {self.norm_mode!r}")
        if not self.speeds or 1.0 not in self.speeds or min(self.speeds) <= 0:
            raise ValueError(f"speeds must be positive and include 1, got {self.speeds}")
        if self.single_clip > 1:
            raise ValueError(f"single_clip is a share of the examples, at most 1, got "
                             f"{self.single_clip}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be at least 1, got {self.ensemble}")

    @classmethod
    def quick(cls, **overrides) -> "ClassifierTrainConfig":
        """Settings for a demonstration run of a minute or two on a laptop CPU: one model on
        log-mels alone, 12 epochs, no speed copies and no speaker head."""
        return cls(**{"epochs": 12, "prosody": False, "speeds": (1.0,), "speaker_adversary": 0.0,
                      "ensemble": 1, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    def for_audio(self, audio: AudioConfig) -> "ClassifierTrainConfig":
        """These settings with the model sized for ``audio``'s log-mels and, if read, the
        prosody tracks (what training uses)."""
        return replace(self, model=replace(self.model,
                                           n_mels=input_channels(audio, self.prosody)))


@dataclass
class TrainedClassifier:
    """A trained classifier with what is needed to use and describe it."""

    model: EmotionClassifier | EnsembleClassifier
    normalizer: Normalizer
    """Statistics of the training actors: the global mode's normaliser and the fallback for
    speaker mode when a speaker's other utterances are not at hand."""
    config: ClassifierTrainConfig
    history: dict
    train_actors: tuple[int, ...]
    val_actors: tuple[int, ...]
    labels: tuple[str, ...] = EMOTIONS
    """The emotions of the model's outputs, in order (the corpus's label set)."""
    train_speakers: tuple[str, ...] = ()
    """The training speakers as ``corpus/name`` (:func:`~emogan_utils.data.speaker_ids`):
    unlike actor numbers, these never collide across corpora."""
    val_speakers: tuple[str, ...] = ()
    speech_level_db: float | None = None
    """The training clips' median active-speech level (dB of the log-mel), to which a single
    clip is scaled before it is judged with the training statistics."""
    functionals: FunctionalsClassifier | None = None
    """The eGeMAPS branch, if ``config.egemaps``."""


def augment(mel: torch.Tensor, config: ClassifierTrainConfig) -> torch.Tensor:
    """SpecAugment-style frequency and time masks (to 0, the mean) and a random time shift."""
    x = mel.unsqueeze(1)
    for _ in range(config.freq_masks):
        x = torchaudio.transforms.FrequencyMasking(config.freq_mask_param, iid_masks=True)(x)
    for _ in range(config.time_masks):
        x = torchaudio.transforms.TimeMasking(config.time_mask_param, iid_masks=True)(x)
    x = x.squeeze(1)
    if config.time_shift:
        shifts = torch.randint(-config.time_shift, config.time_shift + 1, (len(x),))
        x = torch.stack([torch.roll(row, int(s), dims=-1) for row, s in zip(x, shifts)])
    return x


def fit_classifier(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                   y_val: np.ndarray, config: ClassifierTrainConfig = ClassifierTrainConfig(),
                   checkpoint: str | os.PathLike | None = None, resume: bool = False,
                   stop_after: int | None = None, audio: AudioConfig = AudioConfig(),
                   data: dict | None = None, labels: Sequence[str] = EMOTIONS,
                   speakers: np.ndarray | None = None,
                   x_single: np.ndarray | None = None) -> tuple[EmotionClassifier, dict]:
    """Train on normalised log-mels; return the best model on validation and the history.

    The history holds per-epoch lists (``epoch``, ``train_loss``, ``train_acc``, ``val_loss``,
    ``val_acc``, ``lr``, ``seconds``) and ``best_epoch``, the epoch whose weights are returned.
    With ``checkpoint`` the whole run state (weights, best weights so far, optimiser, schedule,
    random states, history) is written there after every epoch, with ``data`` (what the run
    trains on, e.g. its actors and corpus fingerprint); ``resume=True`` continues from it, if
    made with the same settings and ``data``, and ends with the weights an uninterrupted run
    would. ``stop_after`` ends this call after that many epochs (the best model so far is
    returned). ``speakers`` (each training example's speaker, ``0 .. model.n_speakers - 1``)
    trains the model's adversarial speaker head, with ``config.speaker_adversary`` as weight.
    ``x_single``, if given (the training examples as a single clip is standardised, in
    ``x_train``'s order), replaces a ``config.single_clip`` share of each batch's examples,
    drawn anew; :func:`train_classifier` makes it.

    Under ``torchrun`` (:mod:`emogan_utils.distributed`) each process trains on its shard of
    every batch (``batch_size`` is the global batch), gradients and batch-norm statistics are
    shared, and rank 0 validates, decides early stopping and writes ``checkpoint``.
    """
    config = config.for_audio(audio)
    generator = seed_everything(config.seed)
    device = distributed.start(pick_device(config.device))
    dtype = amp_dtype(device, config.amp)
    model, net = distributed.prepare(EmotionClassifier(config.model).to(device), device)
    batch_size = distributed.per_rank_batch(config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=config.plateau_factor, patience=config.plateau_patience)
        if config.plateau_patience is not None else None)
    scaler = grad_scaler(device, dtype)
    x_train_t, y_train_t = torch.as_tensor(x_train), torch.as_tensor(y_train)
    adversary = config.speaker_adversary > 0 and config.model.n_speakers > 0
    if adversary and (speakers is None or len(speakers) != len(y_train)):
        raise ValueError("the adversarial speaker head needs each training example's speaker")
    s_train_t = torch.as_tensor(speakers) if adversary else None
    mixed = config.single_clip > 0 and x_single is not None
    if mixed and x_single.shape != x_train.shape:
        raise ValueError(f"x_single must hold each training example standardised as a single "
                         f"clip, shaped like x_train {x_train.shape}, got {x_single.shape}")
    x_single_t = torch.as_tensor(x_single) if mixed else None
    y_val_t = torch.as_tensor(y_val)
    run = {"history": {k: [] for k in ("epoch", "train_loss", "train_acc", "val_loss",
                                       "val_acc", "lr", "seconds")},
           "best_key": [-1.0, 0.0], "best_epoch": 0, "stale": 0, "best_state": None,
           "stopped": False}
    trained = {"model": model, "optimizer": optimizer, "scaler": scaler}
    if scheduler is not None:
        trained["scheduler"] = scheduler
    wanted = resumable_config(config.to_dict())
    if resume and checkpoint is not None and Path(checkpoint).exists():
        saved = load_checkpoint(checkpoint, kind="classifier-run", audio=audio)
        check_resumable(Path(checkpoint), saved, wanted, "classifier", data)
        for name, part in trained.items():
            load_weights(checkpoint, part, saved["state"], name)
        run = saved["extra"]["run"]
        restore_random_state(generator, saved["extra"]["rng"])
    history = run["history"]
    start = len(history["epoch"])
    end = config.epochs if stop_after is None else min(config.epochs, start + stop_after)
    if run["stopped"]:  # early stopping had already ended the run
        end = start
    bar = tqdm(range(start + 1, end + 1), desc="epochs", unit="epoch",
               disable=not config.progress or not distributed.is_main())
    for epoch in bar:
        begun = time.perf_counter()
        net.train()
        order = distributed.shard(torch.randperm(len(x_train_t), generator=generator))
        if distributed.active():  # each rank its own masks, and a resumed epoch the same ones
            torch.manual_seed(config.seed * 1_000_003 + epoch * 1009 + distributed.rank())
        total_loss, correct = 0.0, 0
        for begin in range(0, len(order), batch_size):
            index = order[begin:begin + batch_size]
            if len(index) * distributed.world_size() < 2:
                continue  # batch norm needs two examples
            x = x_train_t[index]
            if mixed:
                alone = torch.rand(len(index), generator=generator) < config.single_clip
                x = torch.where(alone[:, None, None], x_single_t[index], x)
            x, y = augment(x, config).to(device), y_train_t[index].to(device)
            s = s_train_t[index].to(device) if adversary else None
            with autocast(device, dtype):
                logits, loss = classifier_loss(net, x, y, config.mixup, config.label_smoothing,
                                               generator, s, config.speaker_adversary)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            check_finite({"training": loss.item()}, epoch,
                         checkpoint if checkpoint is not None and epoch > 1 else None)
            total_loss += loss.item() * len(index)
            correct += (logits.argmax(1) == y).sum().item()
        total_loss, correct, seen = distributed.sum_over_ranks(
            [total_loss, correct, len(order)], device)
        val_loss = val_acc = None
        if distributed.is_main():  # the other ranks take its figures
            val_logits = batched_logits(model, x_val, device, dtype=dtype)
            val_loss = nn.functional.cross_entropy(val_logits, y_val_t).item()
            val_acc = (val_logits.argmax(1) == y_val_t).float().mean().item()
        val_loss, val_acc = distributed.broadcast((val_loss, val_acc))
        lr = optimizer.param_groups[0]["lr"]
        for key, value in zip(history, (epoch, total_loss / seen, correct / seen,
                                        val_loss, val_acc, lr, time.perf_counter() - begun)):
            history[key].append(value)
        bar.set_postfix(loss=f"{val_loss:.3f}", acc=f"{val_acc:.3f}", lr=f"{lr:.1e}")
        if scheduler is not None:
            scheduler.step(val_loss)
        if [val_acc, -val_loss] > run["best_key"]:
            run.update(best_key=[val_acc, -val_loss], best_epoch=epoch, stale=0,
                       best_state={k: v.detach().cpu().clone()
                                   for k, v in model.state_dict().items()})
        else:
            run["stale"] += 1
            run["stopped"] = (config.early_stopping is not None
                              and run["stale"] >= config.early_stopping)
        run["stopped"] = distributed.broadcast(run["stopped"])  # rank 0 decides
        if checkpoint is not None and distributed.is_main():
            save_checkpoint(checkpoint, kind="classifier-run", labels=labels,
                            model_config=config.model.to_dict(),
                            state={k: v.state_dict() for k, v in trained.items()}, audio=audio,
                            extra={**(data or {}), "run": run, "train_config": wanted,
                                   "rng": random_state(generator)})
        if run["stopped"]:
            break
    if run["best_state"] is not None:
        model.load_state_dict(run["best_state"])
    return model.eval(), {**history, "best_epoch": run["best_epoch"]}


def train_classifier(data: Sources, val_actors: Sequence[int | str] | None = None,
                     train_actors: Sequence[int | str] | None = None,
                     config: ClassifierTrainConfig = ClassifierTrainConfig(),
                     audio: AudioConfig = AudioConfig(),
                     cache_dir: str | os.PathLike | None = None,
                     checkpoint: str | os.PathLike | None = None,
                     resume: bool = False,
                     allow_new_emotions: bool = False) -> TrainedClassifier:
    """Train on a corpus folder or manifest (or several, read as one table by
    :func:`~emogan_utils.data.load_corpora`), speaker-independently: validation actors are
    never trained on. The model has one output per emotion of the corpus.

    Without ``val_actors`` a manifest's ``val`` speakers are held out, else two
    gender-balanced actors of each corpus that has more than two
    (:func:`~emogan_utils.data.validation_actors`); without ``train_actors`` a manifest's
    ``train`` speakers train, else every other actor but its ``test`` ones. ``checkpoint`` and
    ``resume`` are :func:`fit_classifier`'s: the run state after every epoch, and continuing
    from it with the same actors, recordings and label set. Speakers are actor numbers or names
    (:func:`~emogan_utils.data.select_actors`). A manifest's emotions outside the known ones
    are refused unless ``allow_new_emotions`` (:func:`~emogan_utils.data.read_manifest`).
    """
    table = load_corpus(data, allow_new_emotions=allow_new_emotions)
    source = source_label(data)
    labels = training_labels(table, source)
    config = config.for_audio(audio)
    actors = sorted(table["actor"].unique().tolist())
    val_actors, train_actors = (None if part is None else select_actors(table, part, source)
                                for part in (val_actors, train_actors))
    val_actors, train_actors = manifest_split(table, val_actors, train_actors)
    if val_actors is None:
        val_actors = validation_actors(table, n_val=2, seed=config.seed)
        if not val_actors:
            raise ValueError(f"{source}: {len(actors)} actor(s) ({actors}), too few to hold two "
                             "out for validation and still train; name the validation actors "
                             "(--val-actors), or use a corpus with more speakers")
    if train_actors is None:
        train_actors = [a for a in actors if a not in set(val_actors)
                        and a not in manifest_actors(table, "test")]
    # plain ints (not numpy's): checkpoints load weights_only
    split = Split(tuple(sorted(map(int, train_actors))), tuple(sorted(map(int, val_actors))), ())
    for name, part in (("training", split.train), ("validation", split.val)):
        missing = sorted(set(part) - set(actors))
        if missing or not part:
            raise ValueError(f"{source}: no {name} actors {missing or ''} in the corpus "
                             f"(it has actors {actors})")
    provenance = run_data(table, data, split.train, split.val, labels)
    named = dict(zip(table["actor"], speaker_ids(table)))
    distributed.start(pick_device(config.device))
    if not distributed.is_main():
        config = replace(config, progress=False)
    distributed.others_wait()  # rank 0 extracts the features first; the others read its cache
    mel, table = corpus_inputs(table, audio, cache_dir, config.progress, config.prosody)
    targets, speakers = table["label"].to_numpy(np.int64), table["actor"].to_numpy(np.int64)
    train = table["actor"].isin(split.train).to_numpy()
    val = table["actor"].isin(split.val).to_numpy()
    normalizer = Normalizer.fit_standard(mel[train], audio.db_floor)
    level = float(np.median(speech_level_db(mel[train][:, :audio.n_mels], audio.db_floor)))
    x = {part: standardize(mel[rows], speakers[rows], config.norm_mode, normalizer, audio=audio)
         for part, rows in (("train", train), ("val", val))}
    x_train, y_train, actor_copies = [x["train"]], [targets[train]], [speakers[train]]
    x_single = [_as_single_clips(mel[train], level, normalizer, config, audio)]
    for speed in (s for s in config.speeds if s != 1.0):
        faster, rows = corpus_inputs(table[train], audio, cache_dir, config.progress,
                                     config.prosody, speed)
        # a sped-up actor is standardised with their own sped-up statistics, as every test
        # speaker is with theirs
        x_train.append(standardize(faster, rows["actor"].to_numpy(np.int64), config.norm_mode,
                                   normalizer, audio=audio))
        x_single.append(_as_single_clips(faster, level, normalizer, config, audio))
        y_train.append(rows["label"].to_numpy(np.int64))
        actor_copies.append(rows["actor"].to_numpy(np.int64))
    x_train, y_train = np.concatenate(x_train), np.concatenate(y_train)
    x_single = np.concatenate(x_single) if config.single_clip > 0 else None
    functionals = (centred(corpus_egemaps(table, audio, None if cache_dir is None else
                                          Path(cache_dir) / "egemaps", config.progress),
                           speakers) if config.egemaps else None)
    s_train = _speaker_ids(actor_copies) if config.speaker_adversary > 0 else None
    # TrainedClassifier.config describes the model trained
    config = replace(config, model=replace(
        config.model, n_classes=len(labels),
        n_speakers=0 if s_train is None else int(s_train.max()) + 1))
    distributed.main_done()
    members, histories = [], []
    for k in range(config.ensemble):
        model, history = fit_classifier(x_train, y_train, x["val"], targets[val],
                                        replace(config, seed=config.seed + k),
                                        _member_run(checkpoint, k), resume, audio=audio,
                                        data=provenance, labels=labels, speakers=s_train,
                                        x_single=x_single)
        members.append(model)
        histories.append(history)
    for k in range(1, config.ensemble):  # the caller removes its own run state
        if checkpoint is not None:
            _member_run(checkpoint, k).unlink(missing_ok=True)
    branch = None if functionals is None else fit_functionals(
        functionals[train], targets[train], functionals[val], targets[val],
        FunctionalsConfig(n_features=functionals.shape[1], n_classes=len(labels)), config.seed)
    model, history = ((members[0], histories[0]) if config.ensemble == 1 else
                      (EnsembleClassifier(members), {**histories[0], "members": histories[1:]}))
    return TrainedClassifier(model, normalizer, config, history, split.train, split.val, labels,
                             *_names(named, split), level, branch)


def fit_functionals(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                    y_val: np.ndarray, config: FunctionalsConfig = FunctionalsConfig(),
                    seed: int = 0, epochs: int = 300, lr: float = 3e-3,
                    weight_decay: float = 1e-2) -> FunctionalsClassifier:
    """The eGeMAPS branch trained on speaker-centred functionals ``(N, n_features)``
    (:func:`~emogan_utils.egemaps.centred`): full-batch AdamW, the weights of the epoch with the
    best validation accuracy (the first of ties), then the temperature that makes its
    probabilities fit the validation clips best (:func:`fit_temperature`). A second or two on
    a CPU."""
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError("the eGeMAPS branch needs training and validation clips")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FunctionalsClassifier(config)
        x, y = torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(y_train)
        v = torch.as_tensor(x_val, dtype=torch.float32)
        model.shift.copy_(x.mean(0))
        model.scale.copy_(x.std(0).clamp_min(1e-6))
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        best, best_state = -1.0, None
        for _ in range(epochs):
            model.train()
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                hits = float((model(v).argmax(1).numpy() == y_val).mean())
            if hits > best:
                best, best_state = hits, {k: t.clone() for k, t in model.state_dict().items()}
        model.load_state_dict(best_state)
        with torch.no_grad():
            logits = model.eval()(v)
        model.temperature.fill_(fit_temperature(logits, torch.as_tensor(y_val)))
    return model.eval()


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor,
                    bounds: tuple[float, float] = (0.05, 100.0)) -> float:
    """The temperature ``T`` (within ``bounds``) minimising the cross-entropy of
    ``logits / T`` against ``targets``: temperature scaling, which calibrates a network's
    probabilities without changing its verdicts. A branch that is overconfident on unseen
    speakers gets a high temperature, and so less say where it is averaged with another."""
    logits = logits.detach().float()
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], max_iter=100, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = nn.functional.cross_entropy(logits / log_t.exp(), targets)
        value.backward()
        return value

    optimizer.step(loss)
    return float(np.clip(log_t.exp().item(), *bounds))


def _as_single_clips(mel: np.ndarray, level_db: float, normalizer: Normalizer,
                     config: ClassifierTrainConfig, audio: AudioConfig) -> np.ndarray | None:
    """Training inputs as a single clip of an unknown speaker is judged: level-matched to
    ``level_db`` and standardised with ``normalizer``; None unless ``config.single_clip``."""
    if config.single_clip <= 0:
        return None
    return standardize(level_matched(mel, level_db, audio), None, "global", normalizer,
                       audio=audio)


def _names(named: dict[int, str], split: Split) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The training and validation speakers of ``split`` as ``corpus/name``."""
    return tuple(named[a] for a in split.train), tuple(named[a] for a in split.val)


def _speaker_ids(actor_copies: Sequence[np.ndarray]) -> np.ndarray:
    """Each training example's speaker as ``0 .. n - 1``, from the actor of each example of
    each copy of the training set (one copy per speed): every copy of an actor is a speaker of
    its own."""
    copy = np.concatenate([np.full(len(a), k) for k, a in enumerate(actor_copies)])
    pairs = np.stack([copy, np.concatenate(actor_copies)], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _member_run(checkpoint: str | os.PathLike | None, member: int) -> Path | None:
    """Where ensemble member ``member`` keeps its run state: ``checkpoint`` for the first,
    ``<checkpoint>.member<k>`` for the others."""
    if checkpoint is None or member == 0:
        return checkpoint
    return Path(checkpoint).with_name(f"{Path(checkpoint).name}.member{member}")


def save_classifier(path: str | os.PathLike, trained: TrainedClassifier,
                    audio: AudioConfig = AudioConfig()) -> Path:
    """Write a trained classifier as a ``classifier`` checkpoint."""
    return save_checkpoint(
        path, kind="classifier", model_config=trained.config.model.to_dict(),
        labels=trained.labels,
        state={"model": {k: v.cpu() for k, v in trained.model.state_dict().items()},
               **({} if trained.functionals is None else {"functionals": {
                   k: v.cpu() for k, v in trained.functionals.state_dict().items()}})},
        audio=audio, normalizer=trained.normalizer,
        extra={"history": trained.history, "norm_mode": trained.config.norm_mode,
               "prosody": trained.config.prosody,
               "ensemble": len(getattr(trained.model, "members", [trained.model])),
               "train_actors": list(trained.train_actors),
               "val_actors": list(trained.val_actors),
               "train_speakers": list(trained.train_speakers),
               "val_speakers": list(trained.val_speakers),
               **({} if trained.speech_level_db is None
                  else {"speech_level_db": trained.speech_level_db}),
               **({} if trained.functionals is None
                  else {"functionals": trained.functionals.config.to_dict()}),
               "train_config": {k: v for k, v in trained.config.to_dict().items()
                                if k != "model"}})
