"""Interactive widgets: see a convolution, a pooling, an activation and an optimizer at work.

=============================  ================================================================
:func:`kernel_explorer`        a 3x3 kernel slid over an image, and the feature map it makes
:func:`conv_arithmetic`        input size, kernel, padding, stride, dilation: the sliding
                               window step by step, and the output size
:func:`pooling_explorer`       max and average pooling, and what a small shift changes
:func:`activation_explorer`    sigmoid, tanh, ReLU, leaky ReLU and their derivatives
:func:`optimizer_race`         SGD, momentum, RMSprop and Adam on a 2-D loss surface
:func:`feature_map_browser`    the feature maps of a torch model, layer by layer, channel by channel
=============================  ================================================================

How one widget works in Jupyter, in Colab and in the static HTML book
---------------------------------------------------------------------
Each builder returns an :class:`Explorer`, an ``ipywidgets.VBox``. It holds a small grid of
precomputed pictures (PNG ``Image`` widgets, about 40 at most), one for each combination of
its *preset controls*. The pictures sit in a tree of ``Stack`` containers (``Tab`` under
ipywidgets 7, which has no ``Stack``), one level per preset control, and each preset control
is joined with ``jslink`` straight to every container of its level. In the static HTML book,
where no Python runs, moving a preset control therefore shows another precomputed picture.
With a running kernel, ``observe`` callbacks also redraw the picture shown from the current
setting, including the *live controls*, which only do something there.

The numbers come from :mod:`cnnbook.scratch.functional` (NumPy) and :mod:`cnnbook.scratch.optim`; only
:func:`feature_map_browser` needs torch. The data each picture is drawn from is kept in
``Explorer.frames`` (so tests and readers can check it), and ``Explorer.draw(frame)`` turns it

Where things live
-----------------
=========================  =================================================================
``_explorer``              :class:`Explorer`, the tree of precomputed pictures and its links
``_pictures``              drawing arrays, grids and curves into PNGs; the default images
``convolution``            :func:`kernel_explorer`, :func:`conv_arithmetic`
``pooling``                :func:`pooling_explorer`
``activation``             :func:`activation_explorer`
``optimizer``              :func:`optimizer_race` and its loss surface
``model_features``         :func:`feature_maps`, :func:`feature_map_browser` (torch)
=========================  =================================================================

Everything public is importable from here: ``from cnnbook.book import widgets as W``.
"""
from cnnbook.book.widgets._explorer import Explorer
from cnnbook.book.widgets._pictures import PANEL, sample_photograph
from cnnbook.book.widgets.activation import (ACTIVATIONS, ActivationExplorer, ActivationFrame,
                                             activation_and_derivative, activation_explorer, activation_frame)
from cnnbook.book.widgets.convolution import (CLASSIC_KERNELS, CONV_PRESETS, ConvArithmetic, ConvFrame, ConvSetting,
                                              KernelExplorer, KernelFrame, conv_arithmetic, conv_frame, kernel_explorer)
from cnnbook.book.widgets.model_features import FeatureFrame, FeatureMapBrowser, feature_map_browser, feature_maps
from cnnbook.book.widgets.optimizer import (RACE_START, OptimizerRace, RaceFrame, loss_surface, loss_surface_gradient,
                                            optimizer_paths, optimizer_race)
from cnnbook.book.widgets.pooling import PoolFrame, PoolingExplorer, pool_frame, pooling_explorer

__all__ = ["Explorer", "kernel_explorer", "conv_arithmetic", "pooling_explorer",
           "activation_explorer", "optimizer_race", "feature_map_browser",
           "sample_photograph", "feature_maps", "CLASSIC_KERNELS", "loss_surface", "loss_surface_gradient",
           "optimizer_paths", "conv_frame", "pool_frame", "activation_frame", "ConvSetting", "CONV_PRESETS",
           "RACE_START", "ACTIVATIONS", "activation_and_derivative", "PANEL",
           "KernelFrame", "KernelExplorer", "ConvFrame", "ConvArithmetic", "PoolFrame", "PoolingExplorer",
           "ActivationFrame", "ActivationExplorer", "RaceFrame", "OptimizerRace", "FeatureFrame", "FeatureMapBrowser"]
