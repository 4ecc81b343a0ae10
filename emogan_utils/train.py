"""The training API gathered in one module, for notebooks and user code: training the emotion
classifier (:mod:`emogan_utils.classifier_training`) and the conditional GAN
(:mod:`emogan_utils.gan_training`) with their parallel pairs (:mod:`emogan_utils.pairs`) and
losses (:mod:`emogan_utils.losses`), the device, seed and precision helpers
(:mod:`emogan_utils.runtime`), and the input standardisation and batched logits that inference
shares (:mod:`emogan_utils.inputs`, :mod:`emogan_utils.models`). Modules of the package import
from those modules, not from here.
"""

from emogan_utils.classifier_training import (ClassifierTrainConfig, TrainedClassifier, augment,
                                              fit_classifier, save_classifier, train_classifier)
from emogan_utils.gan_training import (GANParts, GANTrainConfig, build_gan, fit_gan, gan_step,
                                       train_gan, validate_gan)
from emogan_utils.inputs import NORM_MODES, standardize
from emogan_utils.losses import paired_l1
from emogan_utils.models import batched_logits, emotion_code
from emogan_utils.pairs import (ParallelSet, dtw_alignment, mfcc_for_alignment, parallel_pairs,
                                parallel_set)
from emogan_utils.runtime import (amp_dtype, autocast, grad_scaler, pick_device, random_state,
                                  restore_random_state, seed_everything)

__all__ = [
    # emotion classifier
    "ClassifierTrainConfig", "TrainedClassifier", "augment", "fit_classifier",
    "train_classifier", "save_classifier", "NORM_MODES", "standardize", "batched_logits",
    # conditional GAN
    "GANTrainConfig", "GANParts", "build_gan", "gan_step", "validate_gan", "fit_gan",
    "train_gan", "paired_l1", "emotion_code",
    "ParallelSet", "mfcc_for_alignment", "dtw_alignment", "parallel_pairs", "parallel_set",
    # device, seeding, mixed precision
    "pick_device", "seed_everything", "random_state", "restore_random_state", "amp_dtype",
    "autocast", "grad_scaler",
]
