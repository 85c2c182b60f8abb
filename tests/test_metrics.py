"""cnnbook.pytorch.metrics against scikit-learn, on hand-checkable and hypothesis-drawn labels."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from cnnbook.pytorch import metrics as M
from cnnbook.pytorch import plots


@st.composite
def label_pairs(draw):
    c = draw(st.integers(1, 6))
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    return rng.integers(0, c, n), rng.integers(0, c, n), c


def test_golden_case_by_hand():
    y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    cm = M.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert M.accuracy(y_true, y_pred) == pytest.approx(3 / 5)
    np.testing.assert_allclose(M.precision(y_true, y_pred), [1 / 2, 2 / 3, 0.0])
    np.testing.assert_allclose(M.recall(y_true, y_pred), [1 / 2, 1.0, 0.0])
    np.testing.assert_allclose(M.f1_score(y_true, y_pred), [1 / 2, 0.8, 0.0])
    assert M.f1_score(y_true, y_pred, average="macro") == pytest.approx((0.5 + 0.8) / 3)
    assert M.recall(y_true, y_pred, average="weighted") == pytest.approx((2 * 0.5 + 2 * 1.0) / 5)


@settings(max_examples=40, deadline=None)
@given(label_pairs())
@pytest.mark.filterwarnings("ignore:A single label was found")
def test_confusion_matrix_and_accuracy_equal_sklearn(data):
    y_true, y_pred, c = data
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred, c),
                                  skm.confusion_matrix(y_true, y_pred, labels=range(c)))
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


@settings(max_examples=40, deadline=None)
@given(label_pairs(), st.sampled_from([None, "macro", "weighted", "micro"]))
def test_precision_recall_f1_equal_sklearn(data, average):
    y_true, y_pred, c = data
    ours = {"p": M.precision, "r": M.recall, "f": M.f1_score}
    theirs = {"p": skm.precision_score, "r": skm.recall_score, "f": skm.f1_score}
    for key in ours:
        got = ours[key](y_true, y_pred, average=average, num_classes=c)
        want = theirs[key](y_true, y_pred, average=average, labels=list(range(c)), zero_division=0)
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=f"{key} average={average}")


@st.composite
def sparse_label_pairs(draw):
    """Labels drawn from a few scattered classes (some never occur), sometimes a single class."""
    present = draw(st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(1, 30))
    pick = lambda: np.array(draw(st.lists(st.sampled_from(present), min_size=n, max_size=n)))  # noqa: E731
    return pick(), pick()


@settings(max_examples=60, deadline=None)
@given(sparse_label_pairs(), st.sampled_from([None, "macro", "weighted", "micro"]))
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_inferred_label_set_equals_sklearn(data, average):
    """No num_classes: the classes are those in y_true or y_pred, as in scikit-learn."""
    y_true, y_pred = data
    pairs = ((M.precision, skm.precision_score), (M.recall, skm.recall_score), (M.f1_score, skm.f1_score))
    for ours, theirs in pairs:
        want = theirs(y_true, y_pred, average=average, zero_division=0)
        np.testing.assert_allclose(ours(y_true, y_pred, average=average), want, atol=1e-12,
                                   err_msg=f"{ours.__name__} average={average}")
        labels = [5, 1, 0]                                    # an explicit order, classes maybe absent
        want = theirs(y_true, y_pred, average=average, labels=labels, zero_division=0)
        np.testing.assert_allclose(ours(y_true, y_pred, average=average, labels=labels), want, atol=1e-12,
                                   err_msg=f"{ours.__name__} labels={labels} average={average}")


def test_label_set_golden_cases():
    # label 1 occurs in neither array: it is not averaged as a zero (it was, before)
    assert M.precision([0, 2, 2], [0, 2, 0], average="macro") == pytest.approx(0.75)
    assert M.f1_score([3, 3], [3, 3], average="macro") == 1.0          # one class only
    assert M.recall([3, 3], [3, 3]).tolist() == [1.0]
    assert M.precision([0, 2], [0, 2], num_classes=3).tolist() == [1.0, 0.0, 1.0]   # C given: all of them


def test_string_labels_are_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"precision: y_true must hold integer class indices, got dtype <U3 "
                                        r"\(e.g. np.str_\('cat'\)|'cat'\); map class names to indices first"):
        M.precision(["cat", "dog"], [0, 1])
    with pytest.raises(TypeError, match=r"f1_score: y_pred must hold integer class indices, got dtype object"):
        M.f1_score([0, 1], np.array([None, 1], dtype=object))
    with pytest.raises(ValueError, match=r"recall: labels must be distinct class indices >= 0, got \[1, 1\]"):
        M.recall([0, 1], [0, 1], labels=[1, 1])


def test_accepts_torch_tensors_and_lists():
    y_true = torch.tensor([0, 1, 2, 2])
    y_pred = torch.tensor([0, 2, 2, 2])
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred),
                                  M.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2]))
    assert M.accuracy(y_true, y_pred) == pytest.approx(0.75)


def test_num_classes_counts_a_class_that_never_appears():
    cm = M.confusion_matrix([0, 1], [0, 1], num_classes=4)
    assert cm.shape == (4, 4) and cm.sum() == 2
    np.testing.assert_allclose(M.recall([0, 1], [0, 1], num_classes=4), [1, 1, 0, 0])
    np.testing.assert_allclose(M.recall([0, 1], [0, 1], num_classes=4, zero_division=1.0), [1, 1, 1, 1])


def test_classification_report_matches_sklearn_numbers():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    ours = M.classification_report(y_true, y_pred, class_names=["a", "b", "c"]).split()
    theirs = skm.classification_report(y_true, y_pred, target_names=["a", "b", "c"], digits=3).split()
    assert [t for t in ours if t[0].isdigit()] == [t for t in theirs if t[0].isdigit()]


def test_errors_name_function_argument_and_values():
    with pytest.raises(ValueError, match=r"confusion_matrix: y_true and y_pred must have the same length, got 2 and 3"):
        M.confusion_matrix([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match=r"confusion_matrix: y_pred holds labels outside \[0, 2\)"):
        M.confusion_matrix([0, 1], [0, 2], num_classes=2)
    with pytest.raises(ValueError, match=r"y_pred must be 1-D class indices, got shape \(2, 3\)"):
        M.accuracy([0, 1], np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"precision: y_true must hold integer class indices"):
        M.precision([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match=r"f1_score: average must be one of .*got 'mean'"):
        M.f1_score([0, 1], [0, 1], average="mean")


def test_plot_confusion_matrix_normalizes_rows_to_recall():
    cm = np.array([[3, 1], [0, 4]])
    fig = plots.plot_confusion_matrix(cm, ["a", "b"], normalize="true")
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0.00", "0.25", "0.75", "1.00"]
    assert fig.axes[0].get_xlabel() == "predicted class"
    with pytest.raises(ValueError, match="normalize must be None, 'true' or 'pred', got 'all'"):
        plots.plot_confusion_matrix(cm, normalize="all")
    matplotlib.pyplot.close("all")


def test_other_plots_draw_and_label():
    hist = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.7]}
    fig = plots.plot_history(hist)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1
    with pytest.raises(ValueError, match=r"plot_history: no \['f1'\] in the history"):
        plots.plot_history(hist, metrics=("f1",))
    fig = plots.plot_curves({"a": np.ones((3, 4)), "b": np.arange(4)}, ylabel="loss")
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].collections) == 1  # one std band
    fig = plots.plot_comparison({"x": [0.8, 0.82, 0.81], "y": [0.9, 0.91, 0.89]}, ylabel="acc")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["x", "y"]
    fig = plots.show_images(torch.rand(5, 1, 28, 28), labels=[0, 1, 2, 3, 4], predictions=[0, 1, 2, 3, 0],
                            class_names=list("abcde"), ncols=3)
    assert sum(ax.get_title() != "" for ax in fig.axes) == 5
    matplotlib.pyplot.close("all")
