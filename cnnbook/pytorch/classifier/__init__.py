"""Chapter 5's Fashion-MNIST classifier: data, model, named configurations, one training call.

Everything the chapter trains goes through :func:`train_classifier`, which builds the model of
a :class:`ClassifierConfig` and trains it with :func:`cnnbook.pytorch.train.fit` (validation every
epoch, best checkpoint kept). It never looks at the test set: every choice is made on the
validation split, and :func:`score_classifier` scores a finished model, single-view and with
test-time augmentation, on whichever split it is given (the test set once, at the end). The
benchmark (``benchmarks/bench_classifier.py``) calls the same functions, so the notebook and
the benchmark measure the same thing.

- :func:`prepare_data`: the train / validation / test split as normalized tensors, optionally
  restricted to a few classes (relabelled ``0..k-1``).
- :class:`FashionCNN`: the plain CNN of the CPU configuration; :class:`FashionResNet`: the
  wider residual network of the GPU configuration (a :class:`cnnbook.pytorch.models.ResNetStyle`).
- :data:`CONFIGS`: ``"cpu"`` (at least 92.5% single-view test accuracy within 180 s on a 2-core
  CPU) and ``"gpu"`` (at least 95.0% within 30 s on a CUDA GPU).
- :func:`ablation_steps`: the improvement table's rows, from a plain baseline to a
  configuration, one change per row.
- :func:`predict_proba`: class probabilities, optionally averaged with the mirrored images
  (*test-time augmentation*).

One module per part: ``data``, ``nets``, ``configs`` (configurations, model and optimizer,
ablation rows) and ``run`` (training and scoring); everything is importable from here. The
augmentation (``random_shift_flip``, ``tta_views``) lives in :mod:`cnnbook.pytorch.augment`,
the image grid (``show_predictions``) in :mod:`cnnbook.pytorch.plots`.
"""
from cnnbook.pytorch.classifier.data import FashionData, prepare_data
from cnnbook.pytorch.classifier.nets import FashionCNN, FashionResNet
from cnnbook.pytorch.classifier.configs import ClassifierConfig, CONFIGS, build_model, ablation_steps, make_optimizer, config_table
from cnnbook.pytorch.classifier.run import predict_proba, Scores, score_classifier, ClassifierRun, train_classifier, most_confused_pairs

__all__ = ['FashionData', 'prepare_data', 'FashionCNN', 'FashionResNet', 'ClassifierConfig', 'CONFIGS', 'build_model', 'ablation_steps', 'make_optimizer', 'config_table', 'predict_proba', 'Scores', 'score_classifier', 'ClassifierRun', 'train_classifier', 'most_confused_pairs']
