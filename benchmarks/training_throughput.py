"""Benchmark 3: training throughput (clips per second) of the classifier and the GAN, fp32
against mixed precision (bf16 autocast on CPU, fp16 + grad scaler on CUDA), in one process on
whatever device ``pick_device`` finds.

    python benchmarks/training_throughput.py [--steps 10] [--batch 32] [--device cpu]

Random inputs of the real shapes (80 mels x 188 frames for the classifier; 64-frame crops,
batch 8, for the GAN as its training uses), after two warm-up steps. Prints a table and a JSON line.
The classifier measured is the larger one of docs/performance.md (128 channels, 3 blocks), the
GAN the default.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from emogan_utils.classifier_training import ClassifierTrainConfig
from emogan_utils.gan_training import GANTrainConfig, build_gan, gan_step
from emogan_utils.models import ClassifierConfig, EmotionClassifier
from emogan_utils.runtime import amp_dtype, autocast, grad_scaler, pick_device

MEASURED_CLASSIFIER = ClassifierConfig(channels=128, n_blocks=3)


def classifier_rate(device: torch.device, amp: bool, steps: int, batch: int) -> float:
    """Clips per second of classifier training steps."""
    config = ClassifierTrainConfig(model=MEASURED_CLASSIFIER)
    model = EmotionClassifier(config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    dtype = amp_dtype(device, amp)
    scaler = grad_scaler(device, dtype)
    x = torch.randn(batch, 80, 188, device=device)
    y = torch.randint(0, 8, (batch,), device=device)

    def step() -> None:
        with autocast(device, dtype):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return batch * steps / _time(step, steps, device)


def gan_rate(device: torch.device, amp: bool, steps: int) -> float:
    """Clips per second of GAN steps (one D and one G update each)."""
    config = GANTrainConfig(amp=amp)
    parts = build_gan(config, device, total_steps=steps + 2)
    dtype = amp_dtype(device, amp)
    b, frames = config.batch_size, config.crop_frames
    batch = (torch.rand(b, 80, frames) * 2 - 1, torch.randint(0, 8, (b,)),
             torch.randint(0, 8, (b,)), torch.rand(b, 80, frames) * 2 - 1)
    return b * steps / _time(lambda: gan_step(parts, batch, config, dtype), steps, device)


def _time(step, steps: int, device: torch.device) -> float:
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device")
    args = parser.parse_args()
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads")
    result = {"device": name}
    for amp in (False, True):
        label = "mixed" if amp else "fp32"
        result[f"classifier_{label}_clips_per_s"] = round(classifier_rate(device, amp, args.steps, args.batch), 1)
        result[f"gan_{label}_clips_per_s"] = round(gan_rate(device, amp, args.steps), 1)
    for model in ("classifier", "gan"):
        fp32, mixed = result[f"{model}_fp32_clips_per_s"], result[f"{model}_mixed_clips_per_s"]
        print(f"{model:10s} fp32 {fp32:8.1f} clips/s | mixed {mixed:8.1f} clips/s | x{mixed / fp32:.2f}  ({name})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
