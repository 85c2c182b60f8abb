"""Tools built on PyTorch for chapters 3-6: everything here uses ``torch`` (and, for the
data, ``torchvision``); inside these modules ``nn`` always means ``torch.nn``.

- ``data``: Fashion-MNIST found (or fetched), verified and loaded;
- ``models``: LeNet-, AlexNet-, VGG- and ResNet-style networks for 28x28 images, summaries;
- ``train``: the training loop, evaluation, callbacks (early stopping, checkpoints, ...);
- ``classifier``: chapter 5's complete image-classification task;
- ``explain``: saliency and Grad-CAM;
- ``metrics``: accuracy, precision, recall, F1 and the confusion matrix, from scratch;
- ``plots``: image grids, learning curves, comparisons;
- ``utils``: seeding and device choice.
"""
from cnnbook._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, ["data", "utils", "models", "train", "classifier", "explain",
                                         "metrics", "plots"])
