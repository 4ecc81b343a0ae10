"""emogan: GANs for speech emotion recognition and translation.

Modules, one concern each: ``data`` (RAVDESS files, splits, download), ``synth`` (the embedded
corpus), ``features`` (audio loading, log-mel, normalisation, cache), ``models``, ``train``,
``inversion`` (Griffin-Lim), ``evaluate``, ``inference`` (predict, translate), ``plots``,
``widgets``, ``cli``.
"""

__version__ = "0.1.0"
