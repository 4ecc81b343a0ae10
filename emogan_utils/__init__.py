"""emogan: GANs for speech emotion recognition and translation.

Modules, one concern each: ``data`` (RAVDESS files, splits, download), ``synth`` (the embedded
corpus; ``espeak_worker`` is its espeak-ng server), ``features`` (audio loading, log-mel,
normalisation, cache), ``runtime`` (device, seeding, mixed precision), ``models``, ``losses``,
``pairs`` (the GAN's DTW-aligned parallel pairs), ``classifier_training`` and ``gan_training``
(both gathered in ``train``), ``inversion`` (Griffin-Lim), ``evaluate``, ``inference``
(predict, translate), ``plots``, ``switch`` (the emotion switch's engine), ``widgets`` (its
ipywidgets view), ``cli``.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("emogan")
except _metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0.1.0"
