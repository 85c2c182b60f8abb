"""The new chapter-4 checkers (debug a training loop, design an ablation) accept right answers
and name the bug in wrong ones."""
import numpy as np
import torch

from cnnbook.book import exercises as ex


def assert_fails_with(feedback, *fragments):
    text = str(feedback)
    assert not feedback and text.startswith("✗"), text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in feedback:\n{text}"


def train_epoch(model, batches, optimizer, loss_fn):
    model.train()
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def train_epoch_no_zero_grad(model, batches, optimizer, loss_fn):
    for x, y in batches:
        loss_fn(model(x), y).backward()
        optimizer.step()


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def evaluate_train_mode(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def standardize(train, val):
    mean, std = train.mean(), train.std()
    return (train - mean) / std, (val - mean) / std


def standardize_leaky(train, val):
    both = np.concatenate([train.ravel(), val.ravel()])
    return (train - both.mean()) / both.std(), (val - both.mean()) / both.std()


def standardize_each(train, val):
    return (train - train.mean()) / train.std(), (val - val.mean()) / val.std()


def test_training_loop_right_answer_passes():
    feedback = ex.check_training_loop(train_epoch, evaluate, standardize)
    assert feedback and "Well done!" in str(feedback), str(feedback)


def test_training_loop_names_each_bug():
    assert_fails_with(ex.check_training_loop(train_epoch_no_zero_grad, evaluate, standardize),
                      "case part='train_epoch'", "call optimizer.zero_grad() before loss.backward()")
    assert_fails_with(ex.check_training_loop(train_epoch, evaluate_train_mode, standardize),
                      "case part='evaluate'", "call model.eval() before predicting")
    assert_fails_with(ex.check_training_loop(train_epoch, evaluate, standardize_leaky),
                      "case part='standardize'", "the validation set leaks into preprocessing")
    assert_fails_with(ex.check_training_loop(train_epoch, evaluate, standardize_each),
                      "each set was standardized with its own statistics")
    assert_fails_with(ex.check_training_loop(train_epoch, lambda m, x, y: "high", standardize),
                      "expected the accuracy as a number")


def _runs(settings=("baseline", "dropout"), seeds=3, epochs=(2,), val=True):
    history = lambda n: {"loss": [0.5] * n, **({"val_accuracy": [0.8] * n} if val else {})}
    return {s: [(None, history(epochs[i % len(epochs)])) for i in range(seeds)] for s in settings}


def test_ablation_accepts_a_fair_design():
    feedback = ex.check_ablation(_runs())
    assert feedback and "Well done!" in str(feedback), str(feedback)


def test_ablation_names_each_flaw():
    assert_fails_with(ex.check_ablation(_runs(settings=("a", "b"))), "no setting named 'baseline'")
    assert_fails_with(ex.check_ablation(_runs(settings=("baseline",))), "only one setting")
    assert_fails_with(ex.check_ablation(_runs(seeds=1)), "fewer than 3 seeds")
    assert_fails_with(ex.check_ablation(_runs(epochs=(2, 3))), "different numbers of epochs [2, 3]")
    assert_fails_with(ex.check_ablation(_runs(val=False)), "pass the validation split as val_loader")
    assert_fails_with(ex.check_ablation([]), "runs must be a non-empty dict")
