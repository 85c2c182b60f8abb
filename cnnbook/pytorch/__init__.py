"""Tools built on PyTorch for chapters 3-6: everything here uses ``torch`` (and, for the
data, ``torchvision``); inside these modules ``nn`` always means ``torch.nn``.

Data and models
- ``data``: Fashion-MNIST found (or fetched), verified and loaded;
- ``loader``: ``TensorLoader``, mini-batches from tensors in memory;
- ``augment``: batch augmentation (the one pad-and-gather shift, shift/flip, test-time views, affine);
- ``models``: LeNet-, AlexNet-, VGG- and ResNet-style networks for 28x28 images, summaries, init;
- ``twins``: the torch twin of chapter 2's NumPy LeNet, to check the NumPy one against torch.

Training
- ``train``: the loop (``fit``, ``evaluate``, ``predict``);
- ``history``: the per-epoch ``History`` and the metrics ``fit`` logs;
- ``callbacks``: early stopping, learning-rate reduction, checkpoints;
- ``checkpoint``: weight files with a checksum;
- ``runs``: the same training over several seeds, tabulated as mean ± std;
- ``keras_like``: Keras' ``compile``/``fit``/``evaluate``/``predict`` vocabulary on torch objects.

Results
- ``classifier``: chapter 5's complete image-classification task;
- ``metrics``: accuracy, precision, recall, F1 and the confusion matrix, from scratch;
- ``explain``: saliency and Grad-CAM;
- ``plots``: the image grid, learning curves, comparisons, confusion matrices;
- ``utils``: seeding, device choice, eval mode for a block, text tables.
"""
from cnnbook._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, ["data", "loader", "augment", "models", "train", "history", "callbacks",
                                         "checkpoint", "runs", "keras_like", "classifier", "metrics",
                                         "explain", "plots", "utils", "twins"])
