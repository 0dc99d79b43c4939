"""Robustness: argument validation, numerical extremes, hostile checkpoints, determinism, and
flat memory/time over long second-order MAML runs.

Bugs found here are strict xfails (``bug(...)``, reason "BUG: ..."); once fixed, the mark becomes
``fixed(...)`` / ``@was_bug(...)``, which keep the description and let the test guard the fix.
"""
import gc
import math
import os
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import tinymeta as tm
import tinymeta.nn.functional as F
from tinymeta import learners, meta, nn, optim
from tinymeta.data import DataLoader, train_val_test_split
from tinymeta.optim import lr_scheduler
from tinymeta.train import fit


def bug(reason):
    return pytest.mark.xfail(strict=True, reason="BUG: " + reason)


def fixed(reason):
    """A bug these tests found that is fixed now: no mark, the test guards the fix."""
    return []


def was_bug(reason):
    return lambda test: test


def params():
    return nn.MLP([2, 3, 1], rng=0).parameters()


def sgd():
    return optim.SGD(params(), lr=0.1)


def sinusoid_maml(seed=0, inner_steps=1, first_order=False, hidden=40):
    model = nn.MLP([1, hidden, hidden, 1], rng=seed)
    learner = meta.MAML(model, inner_lr=0.01, inner_steps=inner_steps, first_order=first_order)
    return learner, optim.Adam(learner.parameters(), lr=1e-3)


_rng = np.random.default_rng(0)
X10 = _rng.normal(size=(10, 2))
Y10 = np.arange(10) % 2
XC = _rng.normal(size=(100, 4))
YC = np.arange(100) % 10
XF = np.ones((10, 2), np.float32)
YF = np.zeros(10, np.int64)


def _small_maml():
    return meta.MAML(nn.MLP([1, 8, 1], rng=0))


def _fit(**kw):
    m = nn.MLP([2, 3, 2], rng=0)
    args = dict(model=m, loss_fn=F.cross_entropy, optimizer=optim.SGD(m.parameters(), lr=0.1),
                train=(XF, YF), progress=False)
    args.update(kw)
    return fit(**args)


def _train(**kw):
    learner = _small_maml()
    args = dict(learner=learner, tasks=meta.tasks.Sinusoid(), meta_optimizer=optim.Adam(learner.parameters()),
                iterations=1, meta_batch=2, progress=False)
    args.update(kw)
    return meta.fit(**args)


# ----------------------------------------------------------------------------- argument validation
# (callable, the error class expected, a word the message must contain: the argument's name)

AE, SE, CE, TE = tm.ArgumentError, tm.ShapeError, tm.CheckpointError, tm.TinymetaError


def mlp18():
    return nn.MLP([1, 8, 1])


VALIDATION = [
    # optimizers
    ("SGD lr<0", lambda: optim.SGD(params(), lr=-0.1), AE, "lr"),
    ("SGD momentum<0", lambda: optim.SGD(params(), lr=0.1, momentum=-0.5), AE, "momentum"),
    ("SGD weight_decay<0", lambda: optim.SGD(params(), lr=0.1, weight_decay=-1), AE, "weight_decay"),
    ("SGD nesterov without momentum", lambda: optim.SGD(params(), lr=0.1, nesterov=True), AE,
     "Nesterov"),
    ("SGD lr nan", lambda: optim.SGD(params(), lr=float("nan")), AE, "lr"),
    ("Adam lr<0", lambda: optim.Adam(params(), lr=-1e-3), AE, "lr"),
    ("Adam beta1=1", lambda: optim.Adam(params(), betas=(1.0, 0.999)), AE, "betas"),
    ("Adam beta2<0", lambda: optim.Adam(params(), betas=(0.9, -0.1)), AE, "betas"),
    ("Adam eps=0", lambda: optim.Adam(params(), eps=0.0), AE, "eps"),
    ("AdamW weight_decay<0", lambda: optim.AdamW(params(), weight_decay=-1), AE, "weight_decay"),
    ("RMSprop alpha>1", lambda: optim.RMSprop(params(), alpha=1.5), AE, "alpha"),
    ("RMSprop momentum<0", lambda: optim.RMSprop(params(), momentum=-1), AE, "momentum"),
    ("Adagrad lr<0", lambda: optim.Adagrad(params(), lr=-1), AE, "lr"),
    ("optimizer empty params", lambda: optim.SGD([], lr=0.1), AE, "empty"),
    ("optimizer non-tensor param", lambda: optim.SGD([np.ones(2)], lr=0.1), AE, "parameter"),
    ("clip_grad_norm_ max_norm<0", lambda: optim.clip_grad_norm_(params(), -1.0), AE, "max_norm"),
    ("StepLR step_size=0", lambda: lr_scheduler.StepLR(sgd(), 0), AE, "step_size"),
    ("CosineAnnealingLR T_max=0", lambda: lr_scheduler.CosineAnnealingLR(sgd(), 0), AE, "T_max"),
    # modules
    ("Linear in_features=0", lambda: nn.Linear(0, 3), AE, "in_features"),
    ("Linear out_features<0", lambda: nn.Linear(3, -1), AE, "out_features"),
    ("Linear in_features=2.5", lambda: nn.Linear(2.5, 3), AE, "in_features"),
    ("MLP one size", lambda: nn.MLP([3]), AE, "sizes"),
    ("MLP activation", lambda: nn.MLP([3, 1], activation="foo"), AE, "activation"),
    ("Sequential non-module", lambda: nn.Sequential(3), AE, "Module"),
    ("functional_call unknown name",
     lambda: nn.functional_call(nn.MLP([2, 1]), {"x": tm.ones(1)}, tm.ones(1, 2)), AE, "x"),
    # learners
    ("LinearRegression lr<0", lambda: learners.LinearRegression(lr=-1), AE, "lr"),
    ("LinearRegression epochs=0", lambda: learners.LinearRegression(epochs=0), AE, "epochs"),
    ("LinearRegression batch_size=0", lambda: learners.LinearRegression(batch_size=0), AE,
     "batch_size"),
    ("LinearRegression optimizer", lambda: learners.LinearRegression(optimizer="foo"), AE,
     "optimizer"),
    ("LogisticRegression C=0", lambda: learners.LogisticRegression(C=0), AE, "C"),
    ("LogisticRegression penalty", lambda: learners.LogisticRegression(penalty="l1"), AE, "penalty"),
    ("MLPClassifier hidden 0", lambda: learners.MLPClassifier(hidden_layer_sizes=(0,)), AE,
     "hidden_layer_sizes"),
    ("MLPClassifier validation_fraction", lambda: learners.MLPClassifier(validation_fraction=1.5),
     AE, "validation_fraction"),
    ("MLPClassifier patience=0", lambda: learners.MLPClassifier(patience=0), AE, "patience"),
    ("MLPClassifier set_params lr<0", lambda: learners.MLPClassifier().set_params(lr=-1), AE, "lr"),
    ("RidgeRegression alpha<0", lambda: learners.RidgeRegression(alpha=-1), AE, "alpha"),
    ("LinearRegression.fit X/y lengths", lambda: learners.LinearRegression(epochs=2).fit(X10, Y10[:9]),
     SE, "samples"),
    ("LogisticRegression.fit X/y lengths", lambda: learners.LogisticRegression(epochs=2).fit(X10, Y10[:9]),
     SE, "samples"),
    ("MLPClassifier.fit X/y lengths", lambda: learners.MLPClassifier(epochs=2).fit(X10, Y10[:9]),
     SE, "samples"),
    ("MLPRegressor.fit X/y lengths", lambda: learners.MLPRegressor(epochs=2).fit(X10, Y10[:9]),
     SE, "samples"),
    ("RidgeRegression.fit X/y lengths", lambda: learners.RidgeRegression().fit(X10, Y10[:9]), SE,
     "samples"),
    ("fit X with NaN", lambda: learners.RidgeRegression().fit(np.full((3, 2), np.nan), np.ones(3)),
     AE, "NaN"),
    ("fit 1-D X", lambda: learners.RidgeRegression().fit(np.ones(3), np.ones(3)), SE, "2-D"),
    ("LogisticRegression 3 classes",
     lambda: learners.LogisticRegression(epochs=2).fit(X10, np.arange(10) % 3), AE, "2 classes"),
    ("predict before fit", lambda: learners.RidgeRegression().predict(X10), TE, "fit"),
    ("predict n_features", lambda: learners.RidgeRegression().fit(X10, Y10).predict(X10[:, :1]), SE,
     "features"),
    # task samplers
    ("Sinusoid k_support=0", lambda: meta.tasks.Sinusoid(k_support=0), AE, "k_support"),
    ("Sinusoid k_query<0", lambda: meta.tasks.Sinusoid(k_query=-1), AE, "k_query"),
    ("Sinusoid amp_range reversed", lambda: meta.tasks.Sinusoid(amp_range=(5, 1)), AE, "amp_range"),
    ("Sinusoid.sample 0 tasks", lambda: meta.tasks.Sinusoid().sample(0), AE, "n_tasks"),
    ("Sinusoid.sample rng='a'", lambda: meta.tasks.Sinusoid().sample(2, rng="a"), TE, "rng"),
    ("LinearRegression tasks dim=0", lambda: meta.tasks.LinearFunctions(dim=0), AE, "dim"),
    ("LinearRegression tasks noise<0", lambda: meta.tasks.LinearFunctions(noise=-1), AE, "noise"),
    ("FewShot more ways than classes", lambda: meta.tasks.FewShotClassification(XC, YC, n_way=11),
     AE, "n_way"),
    ("FewShot zero shots", lambda: meta.tasks.FewShotClassification(XC, YC, k_shot=0), AE, "k_shot"),
    ("FewShot X/y lengths", lambda: meta.tasks.FewShotClassification(XC, YC[:99]), SE, "y"),
    ("FewShot too few examples", lambda: meta.tasks.FewShotClassification(XC, YC, k_shot=5, k_query=6),
     AE, "k_shot"),
    ("FewShot unknown classes", lambda: meta.tasks.FewShotClassification(XC, YC, classes=[42]), AE,
     "classes"),
    # meta-learners
    ("MAML inner_lr<0", lambda: meta.MAML(mlp18(), inner_lr=-1), AE, "inner_lr"),
    ("MAML inner_steps=0", lambda: meta.MAML(mlp18(), inner_steps=0), AE, "inner_steps"),
    ("MAML inner_steps=1.5", lambda: meta.MAML(mlp18(), inner_steps=1.5), AE,
     "inner_steps"),
    ("MAML model", lambda: meta.MAML("a"), AE, "model"),
    ("MAML loss", lambda: meta.MAML(mlp18(), loss="foo"), AE, "loss"),
    ("Reptile outer_step_size=0", lambda: meta.Reptile(mlp18(), outer_step_size=0), AE,
     "outer_step_size"),
    ("Reptile inner_steps=0", lambda: meta.Reptile(mlp18(), inner_steps=0), AE,
     "inner_steps"),
    ("MetaSGD inner_lr=0", lambda: meta.MetaSGD(mlp18(), inner_lr=0), AE, "inner_lr"),
    ("MappingLearner mode", lambda: meta.MappingLearner(mlp18(), mode="foo"), AE, "mode"),
    ("RidgeHead lam=0", lambda: meta.RidgeHead(mlp18(), 2, lam=0), AE, "lam"),
    ("MAML.adapt X/y lengths", lambda: _small_maml().adapt(np.ones((5, 1)), np.ones((4, 1))), SE,
     "targets"),
    # meta.train / meta.evaluate
    ("meta.train iterations<0", lambda: _train(iterations=-1), AE, "iterations"),
    ("meta.train meta_batch=0", lambda: _train(meta_batch=0), AE, "meta_batch"),
    ("meta.train no optimizer", lambda: _train(meta_optimizer=None), AE, "meta_optimizer"),
    ("meta.train resume without path", lambda: _train(resume=True), AE, "resume"),
    ("meta.train resume missing file", lambda: _train(resume=True, checkpoint="/nonexistent/ckpt.npz"),
     CE, "checkpoint"),
    # train.fit, data
    ("fit epochs<0", lambda: _fit(epochs=-1), AE, "epochs"),
    ("fit accumulate=0", lambda: _fit(accumulate=0), AE, "accumulate"),
    ("fit batch_size=0", lambda: _fit(batch_size=0), AE, "batch_size"),
    ("fit X/y lengths", lambda: _fit(train=(XF, YF[:9])), SE, "samples"),
    ("fit early_stopping=0", lambda: _fit(val=(XF, YF), early_stopping=0), AE, "patience"),
    ("fit resume without path", lambda: _fit(resume=True), AE, "resume"),
    ("fit loss_fn", lambda: _fit(loss_fn="mse"), AE, "loss_fn"),
    ("fit train", lambda: _fit(train=XF), AE, "train"),
    ("fit labels out of range", lambda: _fit(train=(XF, YF + 5), epochs=1), AE, "labels"),
    ("DataLoader batch_size=0", lambda: DataLoader(XF, batch_size=0), AE, "batch_size"),
    ("train_val_test_split val", lambda: train_val_test_split(XF, YF, val=1.5), AE, "val"),
    # --- bugs
    pytest.param("SGD lr='0.1'", lambda: optim.SGD(params(), lr="0.1"), AE, "lr",
                 marks=fixed("V1: a non-numeric lr raises a bare TypeError ('>=' between str and float)")),
    pytest.param("Adam lr=None", lambda: optim.Adam(params(), lr=None), AE, "lr",
                 marks=fixed("V1: lr=None raises a bare TypeError")),
    pytest.param("Adam betas=0.9", lambda: optim.Adam(params(), betas=0.9), AE, "betas",
                 marks=fixed("V2: a scalar betas raises a bare TypeError ('float' object is not iterable)")),
    pytest.param("Adam three betas", lambda: optim.Adam(params(), betas=(0.9, 0.9, 0.9)), AE,
                 "betas", marks=fixed("V2: betas of length 3 is accepted silently")),
    pytest.param("SGD params=None", lambda: optim.SGD(None, lr=0.1), AE, "parameters",
                 marks=fixed("V3: params=None raises a bare TypeError")),
    pytest.param("SGD group without params", lambda: optim.SGD([{"lr": 0.1}], lr=0.1), AE,
                 "params", marks=fixed("V3: a param group without 'params' raises a bare KeyError")),
    pytest.param("ExponentialLR gamma<0", lambda: lr_scheduler.ExponentialLR(sgd(), -1.0), AE,
                 "gamma", marks=fixed("V4: a negative gamma is accepted; the lr then turns negative")),
    pytest.param("CosineAnnealingLR eta_min<0", lambda: lr_scheduler.CosineAnnealingLR(sgd(), 5, eta_min=-1),
                 AE, "eta_min",
                 marks=fixed("V4: a negative eta_min is accepted; the lr then turns negative")),
    pytest.param("LeakyReLU slope='a'", lambda: nn.LeakyReLU("a"), AE, "negative_slope",
                 marks=fixed("V5: LeakyReLU('a') is accepted; forward then raises a bare ValueError")),
    pytest.param("Sinusoid.sample rng=-1", lambda: meta.tasks.Sinusoid().sample(2, rng=-1), TE,
                 "rng", marks=fixed("V6: a negative seed raises NumPy's bare ValueError")),
    pytest.param("MAML inner_lr='a'", lambda: meta.MAML(mlp18(), inner_lr="a"), AE,
                 "inner_lr", marks=fixed("V7: a non-numeric inner_lr raises a bare TypeError")),
    pytest.param("MetaSGD inner_steps=0", lambda: meta.MetaSGD(mlp18(), inner_steps=0),
                 AE, "inner_steps",
                 marks=fixed("V8: MetaSGD accepts inner_steps=0 and -1 (MAML and Reptile refuse them)")),
    pytest.param("MAML.adapt steps<0",
                 lambda: _small_maml().adapt(np.ones((5, 1)), np.ones((5, 1)), steps=-1), AE, "steps",
                 marks=fixed("V9: adapt(steps=-1) silently returns the unadapted parameters")),
    pytest.param("meta.train log_every=0", lambda: _train(log_every=0), AE, "log_every",
                 marks=fixed("V10: log_every=0 raises ZeroDivisionError")),
    pytest.param("meta.train checkpoint_every=0",
                 lambda: _train(checkpoint="/tmp/tinymeta-robustness-unused.npz", checkpoint_every=0),
                 AE, "checkpoint_every", marks=fixed("V10: checkpoint_every=0 raises ZeroDivisionError")),
    pytest.param("meta.train iterations='3'", lambda: _train(iterations="3"), AE, "iterations",
                 marks=fixed("V11: iterations='3' raises a bare TypeError")),
    pytest.param("meta.train iterations=1.5", lambda: _train(iterations=1.5), AE, "iterations",
                 marks=fixed("V11: iterations=1.5 is accepted (runs 2 iterations)")),
    pytest.param("meta.train eval_every<0", lambda: _train(eval_every=-1, eval_tasks=2), AE,
                 "eval_every", marks=fixed("V11: eval_every=-1 is accepted (evaluates every iteration)")),
    pytest.param("meta.evaluate n_tasks=0",
                 lambda: meta.evaluate(_small_maml(), meta.tasks.Sinusoid(), n_tasks=0), AE, "n_tasks",
                 marks=fixed("V12: n_tasks=0 is refused by mean_confidence_interval, whose message does not "
                           "name n_tasks")),
    pytest.param("meta.evaluate steps<0",
                 lambda: meta.evaluate(_small_maml(), meta.tasks.Sinusoid(), n_tasks=2, steps=(-1,)),
                 AE, "steps",
                 marks=fixed("V9: evaluate(steps=(-1,)) is accepted")),
]


@pytest.mark.parametrize("what, call, error, word", [
    pytest.param(*v, id=v[0]) if type(v) is tuple else pytest.param(*v.values, marks=v.marks, id=v.values[0])
    for v in VALIDATION])
def test_arguments_are_validated_with_a_message_naming_them(what, call, error, word):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(tm.TinymetaError) as info:
            call()
    assert isinstance(info.value, error), f"{what}: {type(info.value).__name__} is not a {error.__name__}"
    builtin = {tm.ArgumentError: ValueError, tm.ShapeError: ValueError, tm.CheckpointError: ValueError,
               tm.DTypeError: TypeError}.get(error)
    if builtin:
        assert isinstance(info.value, builtin)
    message = str(info.value)
    assert word.lower() in message.lower(), f"{what}: message {message!r} does not name {word!r}"


@pytest.mark.parametrize("argv, flag", [
    (["reproduce", "sinusoid", "--iterations", "0"], "--iterations"),
    (["reproduce", "sinusoid", "--shots", "-1"], "--shots"),
    (["reproduce", "sinusoid", "--meta-batch", "0"], "--meta-batch"),
    (["reproduce", "sinusoid", "--eval-tasks", "x"], "--eval-tasks"),
    (["reproduce", "sinusoid", "--learner", "foo"], "--learner"),
    (["demo", "--iterations", "-5"], "--iterations"),
])
def test_cli_flags_are_validated(argv, flag, capsys):
    from tinymeta import cli
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


# ----------------------------------------------------------------------------- numerical extremes

EXTREME = 1e4


def _finite_grad(fn, x, dtype):
    """Value and gradient of sum(fn(x)) w.r.t. x; also a second-order gradient."""
    t = tm.tensor(x, dtype=dtype, requires_grad=True)
    out = fn(t)
    (g,) = tm.grad(tm.sum(out * tm.tensor(np.linspace(0.5, 1.5, out.size).reshape(out.shape), dtype=dtype)),
                   [t], create_graph=True)
    (gg,) = tm.grad(tm.sum(g * g), [t], allow_unused=True)
    return out.data, g.data, (None if gg is None else gg.data)


def _lse(v):
    m = np.max(v)
    return m + math.log(np.sum(np.exp(np.asarray(v, np.float64) - m)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, fn, x, expected", [
    ("softmax", lambda t: tm.softmax(t, axis=-1), [[EXTREME, -EXTREME, 0.0]], [[1.0, 0.0, 0.0]]),
    ("softmax all huge", lambda t: tm.softmax(t), [[EXTREME, EXTREME]], [[0.5, 0.5]]),
    ("log_softmax", lambda t: tm.log_softmax(t), [[EXTREME, -EXTREME, 0.0]], [[0.0, -2 * EXTREME, -EXTREME]]),
    ("logsumexp +", lambda t: tm.logsumexp(t, axis=-1), [[EXTREME, EXTREME]], [EXTREME + math.log(2)]),
    ("logsumexp -", lambda t: tm.logsumexp(t, axis=-1), [[-EXTREME, -EXTREME]], [-EXTREME + math.log(2)]),
    ("logsumexp mixed", lambda t: tm.logsumexp(t), [EXTREME, -EXTREME, 0.0], EXTREME),
    ("sigmoid", tm.sigmoid, [EXTREME, -EXTREME, 0.0], [1.0, 0.0, 0.5]),
    ("softplus", tm.softplus, [EXTREME, -EXTREME], [EXTREME, 0.0]),
    ("cross_entropy right", lambda t: F.cross_entropy(t, np.array([0, 1]), reduction="none"),
     [[EXTREME, -EXTREME], [-EXTREME, EXTREME]], [0.0, 0.0]),
    ("cross_entropy wrong", lambda t: F.cross_entropy(t, np.array([1, 0]), reduction="none"),
     [[EXTREME, -EXTREME], [-EXTREME, EXTREME]], [2 * EXTREME, 2 * EXTREME]),
    ("softmax_cross_entropy", lambda t: tm.softmax_cross_entropy(t, np.array([1])), [[EXTREME, 0.0]],
     [EXTREME]),
    ("bce_with_logits", lambda t: F.binary_cross_entropy_with_logits(t, np.array([0.0, 1.0, 1.0, 0.0]),
                                                                     reduction="none"),
     [EXTREME, -EXTREME, EXTREME, -EXTREME], [EXTREME, EXTREME, 0.0, 0.0]),
])
def test_extreme_logits_give_finite_values_and_gradients(name, fn, x, expected, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow anywhere on the way
        value, g, gg = _finite_grad(fn, x, dtype)
    assert np.isfinite(value).all() and np.isfinite(g).all(), (value, g)
    assert gg is None or np.isfinite(gg).all(), gg
    np.testing.assert_allclose(value.astype(np.float64), np.asarray(expected, np.float64),
                               rtol=1e-6, atol=1e-6 if dtype == "float64" else 1e-4)


@pytest.mark.parametrize("dtype", [
    pytest.param("float32", marks=fixed("N1: in float32 the probabilities are clipped at finfo.tiny before "
                                      "the log, so BCE(p=0, t=1) is -log(1.2e-38) = 87.3, not PyTorch's "
                                      "clamped 100 (float64 gives 100)")),
    "float64"])
def test_binary_cross_entropy_of_saturated_probabilities_is_clamped_at_100(dtype):
    z = tm.tensor([-EXTREME, EXTREME], dtype=dtype, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        loss = F.binary_cross_entropy(tm.sigmoid(z), np.array([1.0, 0.0]), reduction="none")
        tm.sum(loss).backward()
    np.testing.assert_allclose(loss.data, [100.0, 100.0], rtol=1e-6)
    assert np.isfinite(z.grad.data).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_gradients_have_the_expected_limits(dtype):
    z = tm.tensor([[EXTREME, -EXTREME]], dtype=dtype, requires_grad=True)
    F.cross_entropy(z, np.array([1])).backward()  # softmax - onehot = [1, 0] - [0, 1]
    np.testing.assert_allclose(z.grad.data, [[1.0, -1.0]], atol=1e-6)
    z = tm.tensor([EXTREME, -EXTREME, EXTREME], dtype=dtype, requires_grad=True)
    F.binary_cross_entropy_with_logits(z, np.array([0.0, 1.0, 1.0]), reduction="sum").backward()
    np.testing.assert_allclose(z.grad.data, [1.0, -1.0, 0.0], atol=1e-6)  # sigmoid(z) - t
    z = tm.tensor([EXTREME, -EXTREME], dtype=dtype, requires_grad=True)
    tm.sum(tm.softplus(z)).backward()
    np.testing.assert_allclose(z.grad.data, [1.0, 0.0], atol=1e-6)
    z = tm.tensor([EXTREME, EXTREME, -EXTREME], dtype=dtype, requires_grad=True)
    tm.logsumexp(z).backward()
    # float32 stores lse = 1e4 + log 2 to ~1e-3 absolute, so exp(z - lse) is off by ~1e-4 there
    np.testing.assert_allclose(z.grad.data, [0.5, 0.5, 0.0], atol=1e-6 if dtype == "float64" else 3e-4)


def test_detect_anomaly_names_the_op_whose_backward_makes_nan():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tm.detect_anomaly():
            loss = tm.sum(tm.sqrt(x * 2.0 - 5.0))  # sqrt of a negative number: NaN
            with pytest.raises(tm.AnomalyError, match="sqrt") as info:
                loss.backward()
    assert isinstance(info.value, FloatingPointError)


@was_bug("A1: detect_anomaly checks only backward gradients, so it names the LAST op on the NaN path (here "
     "'mul'), not the first NaN-producing op ('log')")
def test_detect_anomaly_points_at_the_first_nan_producing_op_in_the_middle_of_a_graph():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tm.detect_anomaly():
            h = tm.tanh(x * 2.0 - 5.0) * 3.0 - 1.0     # negative
            z = tm.log(h)                              # log of a negative number: NaN
            w = tm.tanh(z) * 3.0 + 1.0
            loss = tm.sum(w * w)
            with pytest.raises(tm.AnomalyError) as info:
                loss.backward()
    assert "'log'" in str(info.value), str(info.value)


def test_detect_anomaly_is_silent_on_a_finite_graph_and_restores_the_mode():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    with tm.detect_anomaly():
        tm.sum(tm.log(x) * x).backward()
    assert np.isfinite(x.grad.data).all()
    y = tm.tensor([-1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm.sum(tm.sqrt(y)).backward()  # outside the context: no error, NaN gradient
    assert np.isnan(y.grad.data).all()


# ----------------------------------------------------------------------------- checkpoints

def _model(seed=0, sizes=(1, 16, 16, 1)):
    return nn.MLP(list(sizes), rng=seed)


def _state(m):
    return [p.data.copy() for p in m.parameters()]


def _unchanged(m, before):
    return all(np.array_equal(a, b.data) for a, b in zip(before, m.parameters()))


class _Trap:
    """Unpickling this creates ``path``: the proof that something unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _hostile_files(tmp_path):
    good = tmp_path / "good.npz"
    nn.save(_model(1), good)
    raw = good.read_bytes()
    files = {}
    for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
        p = tmp_path / f"truncated-{frac}.npz"
        p.write_bytes(raw[:int(len(raw) * frac)])
        files[f"truncated {frac:.0%}"] = p
    p = tmp_path / "random.npz"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    files["random bytes"] = p
    p = tmp_path / "flipped.npz"
    b = bytearray(raw)
    for i in range(200, len(b), 97):
        b[i] ^= 0xFF
    p.write_bytes(bytes(b))
    files["corrupted bytes"] = p
    p = tmp_path / "foreign.npz"
    np.savez(p, weights=np.ones(3))
    files["foreign npz"] = p
    p = tmp_path / "text.npz"
    p.write_text("not a zip at all\n")
    files["text file"] = p
    trap = tmp_path / "UNPICKLED"
    p = tmp_path / "object.npz"
    arrays = dict(np.load(good))
    obj = np.empty(1, dtype=object)
    obj[0] = _Trap(str(trap))
    arrays["param/0.weight"] = obj
    np.savez(p, **arrays)  # np.savez pickles object arrays
    files["object array (pickle inside)"] = p
    p = tmp_path / "pickle.npz"
    import pickle
    p.write_bytes(pickle.dumps(_Trap(str(trap))))
    files["a bare pickle"] = p
    p = tmp_path / "other-model.npz"
    nn.save(_model(2, sizes=(1, 8, 1)), p)
    files["another model"] = p
    p = tmp_path / "other-last-layer.npz"
    nn.save(_model(3, sizes=(1, 16, 16, 2)), p)  # same names, only the last layer's shape differs
    files["another model, last layer differs"] = p
    p = tmp_path / "missing-key.npz"
    arrays = nn.load_arrays(good)
    arrays.pop("param/2.bias")
    nn.save_arrays(p, arrays)
    files["a parameter missing"] = p
    return files, trap


def test_hostile_checkpoints_are_refused_whole_and_nothing_unpickles(tmp_path, monkeypatch):
    files, trap = _hostile_files(tmp_path)
    import pickle
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    for what, path in files.items():
        model = _model(0)
        before = _state(model)
        with pytest.raises(tm.CheckpointError) as info:
            nn.load(model, path)
        assert isinstance(info.value, ValueError)
        assert _unchanged(model, before), f"{what}: the model was changed"
        assert str(path.name) in str(info.value) or "load" in str(info.value), what
        if what not in ("another model", "another model, last layer differs", "a parameter missing"):
            with pytest.raises(tm.CheckpointError):
                nn.load_arrays(path)
    assert not trap.exists(), "a checkpoint load unpickled an object"


def test_hostile_checkpoints_are_refused_by_fit_resume(tmp_path):
    files, trap = _hostile_files(tmp_path)
    X = np.random.default_rng(0).normal(size=(20, 1))
    y = np.sin(X)
    for what, path in files.items():
        model = _model(0)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        before = _state(model)
        with pytest.raises(tm.CheckpointError):
            fit(model, F.mse_loss, opt, (X, y), epochs=2, progress=False, checkpoint=str(path), resume=True)
        assert _unchanged(model, before), what
        assert opt.state == {}, f"{what}: the optimizer was changed"
    assert not trap.exists()


def test_hostile_checkpoints_are_refused_by_meta_train_resume(tmp_path):
    files, trap = _hostile_files(tmp_path)
    for what, path in files.items():
        learner, opt = sinusoid_maml(hidden=16)
        before = _state(learner.model)
        with pytest.raises(tm.CheckpointError):
            meta.fit(learner, meta.tasks.Sinusoid(), opt, iterations=2, meta_batch=2, checkpoint=str(path),
                       resume=True, progress=False)
        assert _unchanged(learner.model, before), what
    assert not trap.exists()


@was_bug("C2: a zip archive whose members are not .npy arrays makes nn.load_arrays raise a bare AttributeError "
     "('bytes' object has no attribute 'item'): np.load hands back raw bytes for such members")
def test_a_zip_of_non_npy_members_is_refused(tmp_path):
    p = tmp_path / "zip-not-npy.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("param/0.weight.npy", b"garbage")
        z.writestr("__tinymeta_format__.npy", b"garbage")
    model = _model(0)
    before = _state(model)
    with pytest.raises(tm.CheckpointError):
        nn.load(model, p)
    assert _unchanged(model, before)


@was_bug("C1: meta.train's resume loads the learner and optimizer before reading 'run/rng'/'run/iteration', so a "
     "checkpoint missing them is refused only after the learner has been overwritten (half-loaded)")
def test_meta_train_checkpoint_missing_run_state_leaves_the_learner_unchanged(tmp_path):
    path = tmp_path / "meta.npz"
    learner, opt = sinusoid_maml(seed=1, hidden=16)
    meta.fit(learner, meta.tasks.Sinusoid(), opt, iterations=2, meta_batch=2, checkpoint=str(path),
               progress=False)
    arrays = nn.load_arrays(path)
    arrays.pop("run/rng")
    nn.save_arrays(path, arrays)
    learner, opt = sinusoid_maml(seed=0, hidden=16)
    before = _state(learner.model)
    with pytest.raises(tm.CheckpointError):
        meta.fit(learner, meta.tasks.Sinusoid(), opt, iterations=4, meta_batch=2, checkpoint=str(path),
                   resume=True, progress=False)
    assert _unchanged(learner.model, before)


def test_a_checkpoint_of_another_model_leaves_the_optimizer_state_alone(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 1))
    y = np.sin(X)
    path = tmp_path / "fit.npz"
    big = _model(0, sizes=(1, 8, 1))
    fit(big, F.mse_loss, optim.Adam(big.parameters(), lr=1e-2), (X, y), epochs=2, progress=False,
        checkpoint=str(path))
    model = _model(0)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    fit(model, F.mse_loss, opt, (X, y), epochs=1, progress=False)
    before, opt_before = _state(model), opt.state_dict()
    with pytest.raises(tm.CheckpointError):
        fit(model, F.mse_loss, opt, (X, y), epochs=3, progress=False, checkpoint=str(path), resume=True)
    assert _unchanged(model, before)
    after = opt.state_dict()
    for i, s in opt_before["state"].items():
        for k, v in s.items():
            assert np.array_equal(np.asarray(v), np.asarray(after["state"][i][k]))


# ----------------------------------------------------------------------------- determinism

def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.standard_normal((n, 4)) + 2.0 * np.eye(3, 4)[y]).astype(np.float32), y


def _fit_run(seed=0, epochs=4):
    X, y = _blobs()
    model = nn.MLP([4, 16, 3], rng=seed)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    hist = fit(model, F.cross_entropy, opt, (X, y), val=_blobs(32, 1), epochs=epochs, batch_size=8, rng=seed,
               progress=False)
    return _state(model), hist


def _maml_run(seed=0, iterations=20):
    learner, opt = sinusoid_maml(seed=seed, hidden=20)
    hist = meta.fit(learner, meta.tasks.Sinusoid(), opt, iterations=iterations, meta_batch=5, rng=seed,
                      log_every=5, progress=False)
    return _state(learner.model), hist["loss"]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_fit_is_bit_identical_run_to_run():
    (p1, h1), (p2, h2) = _fit_run(), _fit_run()
    assert _same(p1, p2)
    assert dict(h1) == dict(h2)
    p3, _ = _fit_run(seed=1)
    assert not _same(p1, p3)


def test_meta_train_maml_is_bit_identical_run_to_run():
    (p1, l1), (p2, l2) = _maml_run(), _maml_run()
    assert _same(p1, p2) and l1 == l2
    p3, _ = _maml_run(seed=1)
    assert not _same(p1, p3)


@pytest.mark.parametrize("make, kind", [
    (lambda: learners.LinearRegression(epochs=30), "reg"),
    (lambda: learners.LogisticRegression(epochs=30), "bin"),
    (lambda: learners.MLPClassifier(hidden_layer_sizes=(8,), epochs=5), "cls"),
    (lambda: learners.MLPRegressor(hidden_layer_sizes=(8,), epochs=5), "reg"),
    (lambda: learners.MLPClassifier(hidden_layer_sizes=(8,), epochs=8, early_stopping=True), "cls"),
    (lambda: learners.RidgeRegression(alpha=0.5), "reg"),
])
def test_learners_fit_is_bit_identical_run_to_run(make, kind):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = {"reg": X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=60), "bin": (X[:, 0] > 0).astype(int),
         "cls": (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)}[kind]
    a, b = make().fit(X, y), make().fit(X, y)
    assert np.array_equal(a.predict(X), b.predict(X))
    for attr in ("coef_", "intercept_"):
        if hasattr(a, attr):
            assert np.array_equal(np.asarray(getattr(a, attr)), np.asarray(getattr(b, attr)))
    if hasattr(a, "model_"):
        assert _same(_state(a.model_), _state(b.model_))


def test_same_seed_is_bit_identical_across_processes(tmp_path):
    script = (
        "import numpy as np, tinymeta as tm\n"
        "from tinymeta import nn, optim, meta\n"
        "m = nn.MLP([1, 20, 20, 1], rng=0)\n"
        "l = meta.MAML(m, inner_lr=0.01)\n"
        "meta.fit(l, meta.tasks.Sinusoid(), optim.Adam(l.parameters(), lr=1e-3), iterations=10,"
        " meta_batch=4, rng=3, progress=False)\n"
        "import hashlib\n"
        "print(hashlib.sha256(b''.join(p.data.tobytes() for p in m.parameters())).hexdigest())\n")
    outs = []
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.strip())
    assert outs[0] == outs[1]


@pytest.fixture
def kernels_restored():
    was = tm.kernels.enabled()
    yield
    tm.kernels.set_enabled(was)


def test_kernels_on_and_off_agree_for_an_mlp_training_run(kernels_restored):
    runs = {}
    for flag in (True, False):
        tm.kernels.set_enabled(flag)
        runs[flag] = _fit_run(epochs=3)
    (p_on, h_on), (p_off, h_off) = runs[True], runs[False]
    for a, b in zip(p_on, p_off):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_on["train_loss"], h_off["train_loss"], rtol=1e-4)


def test_kernels_on_and_off_agree_for_a_maml_run(kernels_restored):
    runs = {}
    for flag in (True, False):
        tm.kernels.set_enabled(flag)
        runs[flag] = _maml_run(iterations=20)
    (p_on, l_on), (p_off, l_off) = runs[True], runs[False]
    for a, b in zip(p_on, p_off):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(l_on, l_off, rtol=1e-4)


# ----------------------------------------------------------------------------- long runs: memory and time

def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _long_maml_run(iterations, meta_batch=25, timed=False):
    """Second-order MAML (Finn's sinusoid setup) for ``iterations``: RSS per iteration (and with
    ``timed``, slow runs only, the wall time), then a tracemalloc window at the end that must
    retain nothing."""
    learner, opt = sinusoid_maml()
    tasks = meta.tasks.Sinusoid(k_support=10, k_query=10)
    times, rss = np.zeros(iterations), np.zeros(iterations)
    clock = time.perf_counter if timed else (lambda: 0.0)  # the default suite reads no clock
    last = [clock()]

    def callback(it, loss):
        now = clock()
        times[it - 1] = now - last[0]
        rss[it - 1] = _rss_bytes()
        last[0] = clock()

    gc.collect()
    meta.fit(learner, tasks, opt, iterations=iterations, meta_batch=meta_batch, rng=0, log_every=100,
               progress=False, callback=callback)
    # Anything a meta-iteration leaves alive shows up in tracemalloc's "current".
    window = 200
    rng = np.random.default_rng(1)
    batches = [tasks.sample(meta_batch, rng) for _ in range(window)]
    learner.meta_step(batches[0], opt)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for b in batches[1:]:
            learner.meta_step(b, opt)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return times, rss, retained


def _assert_flat(times, rss, retained, window_its, check_time=False):
    """Memory stays flat (RSS and tracemalloc); with ``check_time`` (slow runs only: a wall-clock
    comparison fails on a loaded machine) the per-iteration time does too."""
    n = len(times)
    half = n // 2
    skip = min(200, n // 10)  # the first iterations compile kernels and warm caches
    # the lower quartile: robust to other processes competing for the CPU, yet any per-iteration
    # growth (a graph or a history that keeps growing) moves it
    first_t, second_t = np.percentile(times[skip:half], 25), np.percentile(times[half:], 25)
    first_rss, second_rss = rss[skip:half].mean(), rss[half:].mean()
    growth_mb = (rss[-100:].mean() - rss[skip:skip + 100].mean()) / 2 ** 20
    report = (f"{n} iterations: lower-quartile time {first_t * 1e3:.3f} ms (first half) vs {second_t * 1e3:.3f} ms "
              f"(second half); mean RSS {first_rss / 2 ** 20:.1f} MB vs {second_rss / 2 ** 20:.1f} MB, "
              f"growth {growth_mb:.2f} MB; tracemalloc retained {retained / 1024:.1f} KiB over {window_its} "
              "more iterations")
    print("\n" + report)
    if check_time:
        assert second_t < 1.5 * first_t, report
    assert second_rss - first_rss < 8 * 2 ** 20, report
    assert growth_mb < 16, report
    assert retained < 256 * 1024, report  # nothing per iteration survives (a leak would be MBs)


def test_second_order_maml_memory_stays_flat_2000_iterations():
    # memory measures only: the time comparison lives in the slow 20,000-iteration test
    times, rss, retained = _long_maml_run(2000)
    _assert_flat(times, rss, retained, 199)


@pytest.mark.slow
def test_second_order_maml_memory_and_time_stay_flat_20000_iterations(request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("20,000 iterations (~40 s): run with -m slow")
    times, rss, retained = _long_maml_run(20000, timed=True)
    _assert_flat(times, rss, retained, 199, check_time=True)
