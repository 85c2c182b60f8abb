"""CNN building blocks in NumPy, with the names and meanings of ``torch.nn.functional``.

Every operation comes as a forward function with torch's signature (``conv2d``,
``max_pool2d``, ``cross_entropy``, ...) and an analytic backward function named after it
(``conv2d_backward``, ...) that returns the gradients of the forward's inputs. Arrays are
NCHW, weights ``(C_out, C_in/groups, KH, KW)``, and float32 stays float32 (float64 stays
float64). Convolution and pooling also come as short loop versions (``conv2d_loop``,
``max_pool2d_loop``, ``avg_pool2d_loop``, ``conv2d_backward_loop``): they *define* the
operation, and the vectorized versions are tested against them and against PyTorch.

The definitions live by topic, and this module gathers them:

- :mod:`cnnbook.scratch.conv`: ``conv2d`` (im2col and a matrix product), its loop version and backward;
- :mod:`cnnbook.scratch.pool`: ``max_pool2d``, ``avg_pool2d``, their loop versions and backwards;
- :mod:`cnnbook.scratch.activations`: ``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``softmax``, ``log_softmax``;
- :mod:`cnnbook.scratch.linear`: ``linear`` and ``dropout``;
- :mod:`cnnbook.scratch.normalization`: ``batch_norm``;
- :mod:`cnnbook.scratch.losses`: ``mse_loss``, ``nll_loss``, ``cross_entropy``.

The layers in :mod:`cnnbook.scratch.nn` run convolution and max pooling on the faster paths of
:mod:`cnnbook.scratch.fast` (whose threads ``set_num_threads``/``get_num_threads`` set); the
answers are the same. Bad arguments raise ``ValueError``/``TypeError`` naming the function,
the argument, what was expected and what was given. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> from cnnbook.scratch import functional as F
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> F.max_pool2d(x, 2)
array([[[[ 5.,  7.],
         [13., 15.]]]], dtype=float32)
"""
from __future__ import annotations

from .activations import (leaky_relu, leaky_relu_backward, log_softmax, log_softmax_backward, relu,
                          relu_backward, sigmoid, sigmoid_backward, softmax, softmax_backward, tanh, tanh_backward)
from .conv import conv2d, conv2d_backward, conv2d_backward_loop, conv2d_loop
from .threads import get_num_threads, set_num_threads
from .linear import dropout, dropout_backward, linear, linear_backward
from .losses import (cross_entropy, cross_entropy_backward, mse_loss, mse_loss_backward, nll_loss,
                     nll_loss_backward)
from .normalization import batch_norm, batch_norm_backward
from .pool import (avg_pool2d, avg_pool2d_backward, avg_pool2d_loop, max_pool2d, max_pool2d_backward,
                   max_pool2d_loop)

__all__ = [
    "conv2d", "conv2d_backward", "conv2d_loop", "conv2d_backward_loop",
    "max_pool2d", "max_pool2d_backward", "max_pool2d_loop",
    "avg_pool2d", "avg_pool2d_backward", "avg_pool2d_loop",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "linear", "linear_backward", "batch_norm", "batch_norm_backward",
    "dropout", "dropout_backward", "mse_loss", "mse_loss_backward",
    "nll_loss", "nll_loss_backward", "cross_entropy", "cross_entropy_backward",
    "set_num_threads", "get_num_threads",
]
