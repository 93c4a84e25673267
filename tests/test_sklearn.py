"""pynn.sklearn.MLPClassifier / MLPRegressor against scikit-learn itself.

Oracles: scikit-learn's own estimator checks (``parametrize_with_checks``, no expected
failures, as its MLP declares none), and scikit-learn's MLPClassifier/MLPRegressor trained on the
same data with the same hyper-parameters: with ``shuffle=False`` and float64, pynn starts from
scikit-learn's initial weights and follows it step for step, so loss curves and weights agree to
rounding (SGD, L-BFGS) or closely (Adam, whose epsilon pynn applies after the bias correction).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from sklearn import neural_network as skl
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_friedman1, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import pynn
from pynn.backends import BACKENDS
from pynn.sklearn import MLPClassifier, MLPRegressor
from conftest import IN_CI

# In CI every backend must work (an estimator on a missing backend fails its checks).
HERE = BACKENDS if IN_CI else tuple(pynn.available_backends())
no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ---------------------------------------------------------------- scikit-learn's estimator checks
def _check_instances():
    # max_iter=100 as scikit-learn's own test suite sets for its MLPs
    out = []
    for backend in HERE:
        out += [MLPClassifier(max_iter=100, backend=backend), MLPRegressor(max_iter=100, backend=backend)]
    out += [MLPClassifier(max_iter=100, dtype="float64"), MLPRegressor(max_iter=100, dtype="float64"),
            # float64 for L-BFGS (as scikit-learn's, whose packed weights are float64): in float32 a
            # well-fitted multi-label sigmoid rounds to exactly 1.0, which the checks refuse
            MLPClassifier(max_iter=100, solver="lbfgs", dtype="float64"), MLPRegressor(max_iter=100, solver="lbfgs"),
            MLPClassifier(max_iter=100, solver="sgd", learning_rate_init=0.01)]
    return out


# Per-check parameters, as scikit-learn sets for its own MLPs (PER_ESTIMATOR_CHECK_PARAMS: there
# solver="lbfgs" / solver="sgd" for the same check). Fitting with integer weights and fitting on
# repeated rows agree to rounding; the check compares with rtol=1e-7, which float32 cannot meet.
PER_CHECK_PARAMS = {"check_sample_weight_equivalence_on_dense_data": dict(dtype="float64"),
                    "check_sample_weight_equivalence_on_sparse_data": dict(dtype="float64")}


@no_convergence_warning
@parametrize_with_checks(_check_instances())
def test_sklearn_estimator_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    if name in PER_CHECK_PARAMS:
        estimator = clone(estimator).set_params(**PER_CHECK_PARAMS[name])
    check(estimator)


def test_no_expected_failures_declared():
    # scikit-learn's MLPs declare none; neither do these (no _xfail_checks, no skipped tags)
    for est in (MLPClassifier(), MLPRegressor()):
        assert not getattr(est, "_more_tags", lambda: {})().get("_xfail_checks")
        assert not est.__sklearn_tags__()._skip_test


def test_import_pynn_does_not_import_sklearn():
    code = "import sys, pynn; assert 'sklearn' not in sys.modules, sorted(m for m in sys.modules if 'sklearn' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, pynn.sklearn; assert 'sklearn' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_parameters_as_scikit_learn():
    for ours, theirs in ((MLPClassifier, skl.MLPClassifier), (MLPRegressor, skl.MLPRegressor)):
        mine, ref = ours().get_params(), theirs().get_params()
        assert set(mine) - set(ref) == {"backend", "dtype"}
        assert {k: mine[k] for k in ref} == ref  # same names, same defaults


# ---------------------------------------------------------------- step for step with scikit-learn
def digits(n=600):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n]


def targets(kind, y):
    return {"multiclass": y, "binary": (y % 2 == 0).astype(int),
            "multilabel": np.stack([y % 2, (y % 3 == 0), y > 6], axis=1).astype(int),
            "strings": np.array(["odd", "even"])[y % 2]}[kind]


def both(ours_cls, theirs_cls, X, y, **kw):
    ours = ours_cls(dtype="float64", **kw).fit(X, y)
    theirs = theirs_cls(**{k: v for k, v in kw.items() if k != "backend"}).fit(X, y)
    return ours, theirs


def assert_same_model(ours, theirs, rtol, atol):
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


STEP = dict(shuffle=False, random_state=3, alpha=1e-3, hidden_layer_sizes=(20, 12), activation="tanh", max_iter=12,
            learning_rate_init=0.02, batch_size=100)


@no_convergence_warning
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "strings"])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_classifier_follows_scikit_learn_step_for_step(backend, kind, solver):
    X, y = digits()
    ours, theirs = both(MLPClassifier, skl.MLPClassifier, X, targets(kind, y), solver=solver, backend=backend, **STEP)
    assert ours.out_activation_ == theirs.out_activation_
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    if solver == "sgd":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-10)
        assert ours.t_ == theirs.t_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-8)
    assert_same_model(ours, theirs, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@no_convergence_warning
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_regressor_follows_scikit_learn_step_for_step(backend, n_outputs, solver):
    X, y = make_friedman1(400, n_features=6, random_state=0)
    Y = np.stack([y, y ** 0.5, -y], axis=1)[:, :n_outputs] if n_outputs > 1 else y
    kw = dict(STEP, activation="relu", learning_rate_init=0.002)
    ours, theirs = both(MLPRegressor, skl.MLPRegressor, X, Y, solver=solver, backend=backend, **kw)
    # several outputs: scikit-learn sums the penalty in loss_curve_ batch by batch, pynn takes
    # it at the epoch's ends (see pynn.sklearn); the weights still agree to rounding
    rtol = 1e-10 if n_outputs == 1 else 1e-5
    if solver == "sgd":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=max(rtol, 1e-8))
    assert_same_model(ours, theirs, rtol=1e-7, atol=1e-9)
    assert ours.predict(X).shape == theirs.predict(X).shape
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-7, atol=1e-8)


@no_convergence_warning
@pytest.mark.parametrize("est", ["classifier", "regressor"])
def test_adam_stays_close_to_scikit_learns(est):
    # pynn adds epsilon to the bias-corrected sqrt(v): the steps differ where sqrt(v) is near epsilon
    X, y = digits()
    pair = (MLPClassifier, skl.MLPClassifier) if est == "classifier" else (MLPRegressor, skl.MLPRegressor)
    ours, theirs = both(*pair, X, y if est == "classifier" else y / 9, solver="adam", **STEP)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=2e-3)


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_learning_rate_schedules_match_scikit_learn(schedule):
    # with momentum 0 the velocity form does not matter; 'adaptive' with a large tol divides the
    # rate by 5 several times and then stops
    X, y = digits()
    kw = dict(STEP, solver="sgd", momentum=0.0, learning_rate=schedule, max_iter=40, tol=0.05, n_iter_no_change=2,
              power_t=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = both(MLPClassifier, skl.MLPClassifier, X, y, **kw)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert ours.n_iter_ == theirs.n_iter_
    if schedule == "adaptive":
        assert ours.n_iter_ < 40  # it stopped: the rate fell below 1e-6


def test_tol_and_n_iter_no_change_stop_as_scikit_learn_does():
    X, y = digits()
    ours, theirs = both(MLPClassifier, skl.MLPClassifier, X, y, **dict(STEP, solver="sgd", max_iter=200, tol=1e-2,
                                                                       n_iter_no_change=3))
    assert ours.n_iter_ == theirs.n_iter_ < 200
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_early_stopping_matches_scikit_learn(kind):
    X, y = digits()
    y = targets("binary", y) if kind == "binary" else y / 9.0
    pair = (MLPClassifier, skl.MLPClassifier) if kind == "binary" else (MLPRegressor, skl.MLPRegressor)
    # 600 examples: 100 held out, 500 in 5 full batches (see the short-batch note in pynn.sklearn)
    kw = dict(STEP, solver="sgd", early_stopping=True, validation_fraction=1 / 6, max_iter=60, n_iter_no_change=4,
              tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = both(*pair, X, y, **kw)
    # the same held-out split (same draws), the same scores, the same best weights restored
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-9)
    assert ours.best_loss_ is None and theirs.best_loss_ is None
    assert_same_model(ours, theirs, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- sample_weight, against scikit-learn's
def weights(n, kind, seed=0):
    rng = np.random.default_rng(seed)
    return {"varied": rng.uniform(0.0, 3.0, n), "integers": rng.integers(0, 4, n).astype(float),
            "constant": np.full(n, 2.5)}[kind]


@no_convergence_warning
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("sw", ["varied", "integers"])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_weighted_classifier_follows_scikit_learn(backend, kind, sw, solver):
    # one batch per epoch: scikit-learn's per-batch penalty alpha / sum(s) is then pynn's exactly
    X, y = digits(300)
    s = weights(len(y), sw)
    kw = dict(STEP, solver=solver, batch_size=300)
    ours = MLPClassifier(dtype="float64", backend=backend, **kw).fit(X, targets(kind, y), sample_weight=s)
    theirs = skl.MLPClassifier(**kw).fit(X, targets(kind, y), sample_weight=s)
    if solver == "sgd":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-8)
    assert_same_model(ours, theirs, rtol=1e-7, atol=1e-9)
    # and the weights matter: unweighted training ends elsewhere
    plain = MLPClassifier(dtype="float64", backend=backend, **kw).fit(X, targets(kind, y))
    assert not np.allclose(plain.coefs_[0], ours.coefs_[0], rtol=1e-4, atol=1e-6)


@no_convergence_warning
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_weighted_regressor_follows_scikit_learn(backend, solver):
    X, y = make_friedman1(300, n_features=6, random_state=0)
    s = weights(len(y), "varied")
    kw = dict(STEP, activation="relu", learning_rate_init=0.002, solver=solver, batch_size=300)
    ours = MLPRegressor(dtype="float64", backend=backend, **kw).fit(X, y, sample_weight=s)
    theirs = skl.MLPRegressor(**kw).fit(X, y, sample_weight=s)
    if solver == "sgd":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_same_model(ours, theirs, rtol=1e-7, atol=1e-9)
    assert ours.score(X, y, sample_weight=s) == pytest.approx(theirs.score(X, y, sample_weight=s), rel=1e-9)


@no_convergence_warning
def test_constant_weights_in_mini_batches_follow_scikit_learn(backend):
    # equal weights c: scikit-learn's penalty alpha / (c * batch) in every full batch, pynn's too
    X, y = digits()
    kw = dict(STEP, solver="sgd")
    s = weights(len(y), "constant")
    ours = MLPClassifier(dtype="float64", backend=backend, **kw).fit(X, y, sample_weight=s)
    theirs = skl.MLPClassifier(**kw).fit(X, y, sample_weight=s)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_same_model(ours, theirs, rtol=1e-7, atol=1e-9)


@no_convergence_warning
def test_weighted_early_stopping_scores_as_scikit_learn():
    # the split carries the weights along and the validation accuracy is weighted
    X, y = digits(300)
    s = weights(len(y), "varied", seed=1)
    kw = dict(STEP, solver="sgd", early_stopping=True, validation_fraction=0.2, batch_size=240, max_iter=15,
              n_iter_no_change=50)
    ours = MLPClassifier(dtype="float64", **kw).fit(X, targets("binary", y), sample_weight=s)
    theirs = skl.MLPClassifier(**kw).fit(X, targets("binary", y), sample_weight=s)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def test_weighted_partial_fit_equals_repeated_rows():
    X, y = digits(200)
    s = weights(len(y), "integers")
    a = MLPClassifier(dtype="float64", solver="sgd", shuffle=False, random_state=0, batch_size=200)
    b = clone(a).set_params(batch_size=int(s.sum()))  # one batch each
    a.partial_fit(X, y, sample_weight=s, classes=np.arange(10))
    b.partial_fit(X.repeat(s.astype(int), axis=0), y.repeat(s.astype(int)), classes=np.arange(10))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bad, err", [(np.zeros(50), "non-zero"), (-np.ones(50), "(?i)negative"),
                                      (np.ones(49), "shape"), (np.full(50, np.nan), "NaN")])
def test_bad_sample_weight_is_refused_and_the_model_kept(bad, err):
    X, y = digits(50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(max_iter=5, random_state=0).fit(X, y)
        before = [c.copy() for c in clf.coefs_]
        with pytest.raises(ValueError, match=err):
            clf.fit(X, y, sample_weight=bad)
    for a, b in zip(before, clf.coefs_):
        np.testing.assert_array_equal(a, b)


def test_multiclass_early_stopping_keeps_the_best_weights(backend):
    X, y = digits()
    clf = MLPClassifier(early_stopping=True, random_state=0, max_iter=300, n_iter_no_change=5, backend=backend,
                        learning_rate_init=0.01).fit(X, y)
    best = int(np.argmax(clf.validation_scores_))
    assert clf.n_iter_ < 300 and best < clf.n_iter_ - 1
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the restored weights are those of the best epoch: refit to that epoch without early stopping
    ref = MLPClassifier(early_stopping=True, random_state=0, max_iter=best + 1, n_iter_no_change=1000,
                        backend=backend, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(X, y)
    for a, b in zip(clf.coefs_, ref.coefs_):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- accuracy with shuffling (default settings)
@no_convergence_warning
def test_digits_accuracy_within_one_point_of_scikit_learn():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16, y, test_size=0.3, random_state=0, stratify=y)
    ours, theirs = [], []
    for seed in range(3):
        kw = dict(hidden_layer_sizes=(64,), max_iter=60, learning_rate_init=0.003, random_state=seed)
        ours.append(MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte))
        theirs.append(skl.MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte))
    assert min(theirs) > 0.95
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01


@no_convergence_warning
def test_regression_r2_close_to_scikit_learn():
    X, y = make_friedman1(1500, n_features=8, noise=0.3, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    ours, theirs = [], []
    for seed in range(3):
        kw = dict(hidden_layer_sizes=(64, 32), max_iter=300, learning_rate_init=0.003, random_state=seed)
        ours.append(MLPRegressor(**kw).fit(Xtr, ytr).score(Xte, yte))
        theirs.append(skl.MLPRegressor(**kw).fit(Xtr, ytr).score(Xte, yte))
    # the median over seeds: one run in a few ends on a plateau (either library, by its shuffle)
    assert np.median(theirs) > 0.95 and abs(np.median(ours) - np.median(theirs)) <= 0.01


def test_backends_agree(backend):
    X, y = digits(300)
    kw = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = MLPClassifier(backend="numpy", **kw).fit(X, y)
        got = MLPClassifier(backend=backend, **kw).fit(X, y)
    assert got.network_.backend == backend
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(got.predict_proba(X), ref.predict_proba(X), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- orientation, multi-label, multi-output
def test_coefs_are_sklearn_oriented_views_of_the_network():
    X, y = digits(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=3, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(64, 7), (7, 5), (5, 10)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (10,)]
    net = clf.network_
    for c, b, layer in zip(clf.coefs_, clf.intercepts_, net.layers):
        assert np.shares_memory(c, layer.W) and np.array_equal(c, layer.W.T)
        assert np.shares_memory(b, layer.b) and np.array_equal(b, layer.b[:, 0])
    assert [l.activation for l in net.layers] == ["relu", "relu", "softmax"]


def test_weights_copied_from_scikit_learn_give_its_predictions(backend):
    X, y = digits(300)
    for kind in ("multiclass", "binary", "multilabel"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref = skl.MLPClassifier(hidden_layer_sizes=(9,), max_iter=5, random_state=1).fit(X, targets(kind, y))
            ours = MLPClassifier(hidden_layer_sizes=(9,), max_iter=1, dtype="float64", backend=backend).fit(
                X, targets(kind, y))
        ours.coefs_, ours.intercepts_ = ref.coefs_, ref.intercepts_
        np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_setting_coefs_of_the_wrong_shape_changes_nothing():
    X, y = digits(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, y)
    before = [c.copy() for c in clf.coefs_]
    with pytest.raises(ValueError, match="coefs_"):
        clf.coefs_ = [np.zeros((64, 4)), np.zeros((10, 4))]  # second one transposed
    with pytest.raises(ValueError, match="coefs_ must hold 2 arrays"):
        clf.coefs_ = [np.zeros((64, 4))]
    for a, b in zip(clf.coefs_, before):
        np.testing.assert_array_equal(a, b)


@no_convergence_warning
def test_multilabel_classification():
    X, Y = make_multilabel_classification(300, n_features=10, n_classes=4, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0, learning_rate_init=0.01).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 4
    pred, proba = clf.predict(X), clf.predict_proba(X)
    assert pred.shape == Y.shape and proba.shape == Y.shape
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert clf.score(X, Y) > 0.5  # subset accuracy
    ref = skl.MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0, learning_rate_init=0.01).fit(X, Y)
    assert abs(clf.score(X, Y) - ref.score(X, Y)) < 0.05


@no_convergence_warning
def test_multioutput_regression():
    X, y = make_friedman1(500, n_features=6, random_state=1)
    Y = np.stack([y, 2 * X[:, 0] - X[:, 1]], axis=1)
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0, learning_rate_init=0.01).fit(X, Y)
    assert reg.predict(X).shape == (500, 2) and reg.n_outputs_ == 2 and reg.out_activation_ == "identity"
    assert reg.score(X, Y) > 0.8


# ---------------------------------------------------------------- scikit-learn tooling
@no_convergence_warning
def test_pipeline_gridsearch_cross_val_score():
    X, y = make_classification(300, n_features=8, n_informative=5, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=200, random_state=0, learning_rate_init=0.01))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                               "mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3).fit(X, y)
    assert grid.best_score_ > 0.8
    assert grid.best_estimator_[-1].hidden_layer_sizes in [(4,), (16,)]
    scores = cross_val_score(MLPRegressor(max_iter=50, random_state=0), X, y.astype(float), cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


@no_convergence_warning
def test_clone_gives_an_unfitted_copy_with_the_same_parameters():
    X, y = digits(200)
    clf = MLPClassifier(hidden_layer_sizes=(5,), backend="numpy", dtype="float64", max_iter=3).fit(X, y)
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "coefs_")


@no_convergence_warning
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_pickle_round_trip_keeps_predictions_and_optimizer_state(backend, solver):
    X, y = digits(300)
    kw = dict(hidden_layer_sizes=(10,), max_iter=4, random_state=0, solver=solver, backend=backend)
    clf = MLPClassifier(**kw).fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.loss_curve_ == clf.loss_curve_ and back.network_ is not clf.network_
    # training goes on from the same optimizer state: one more epoch gives the same weights
    clf.partial_fit(X, y)
    back.partial_fit(X, y)
    for a, b in zip(back.coefs_, clf.coefs_):
        np.testing.assert_array_equal(a, b)
    assert pickle.loads(pickle.dumps(MLPRegressor())).get_params() == MLPRegressor().get_params()


# ---------------------------------------------------------------- partial_fit and warm_start
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_matches_scikit_learn(solver):
    X, y = digits()
    kw = dict(STEP, solver=solver)
    ours, theirs = MLPClassifier(dtype="float64", **kw), skl.MLPClassifier(**kw)
    classes = np.unique(y)
    for part in np.array_split(np.arange(600), 3):  # 200 each: two full batches of 100
        ours.partial_fit(X[part], y[part], classes=classes)
        theirs.partial_fit(X[part], y[part], classes=classes)
    rtol = 1e-10 if solver == "sgd" else 2e-3
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert ours.n_iter_ == theirs.n_iter_ == 1 and ours.t_ == theirs.t_ == 600
    reg_o, reg_t = MLPRegressor(dtype="float64", **kw), skl.MLPRegressor(**kw)
    for part in np.array_split(np.arange(600), 6):
        reg_o.partial_fit(X[part], y[part] / 9)
        reg_t.partial_fit(X[part], y[part] / 9)
    np.testing.assert_allclose(reg_o.loss_curve_, reg_t.loss_curve_, rtol=rtol)


def test_partial_fit_rules():
    X, y = digits(100)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(X, y)
    clf = MLPClassifier(max_iter=1).partial_fit(X[:50], y[:50], classes=np.arange(10))
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 10)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y / 9.0)


@no_convergence_warning
def test_warm_start_matches_scikit_learn():
    X, y = digits()
    kw = dict(STEP, solver="sgd", warm_start=True, max_iter=4)
    ours, theirs = MLPClassifier(dtype="float64", **kw), skl.MLPClassifier(**kw)
    for _ in range(3):
        ours.fit(X, y)
        theirs.fit(X, y)
    assert len(ours.loss_curve_) == 12
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_same_model(ours, theirs, rtol=1e-7, atol=1e-9)
    cold = MLPClassifier(dtype="float64", **dict(kw, warm_start=False)).fit(X, y)
    assert len(cold.loss_curve_) == 4


@no_convergence_warning
def test_warm_start_refuses_a_different_architecture_and_follows_backend_and_dtype():
    X, y = digits(200)
    clf = MLPClassifier(hidden_layer_sizes=(8,), warm_start=True, max_iter=2, random_state=0).fit(X, y)
    W = clf.coefs_[0].copy()
    clf.set_params(backend="numpy", dtype="float64")
    clf.fit(X, y)
    assert clf.network_.backend == "numpy" and clf.network_.dtype == np.float64
    assert not np.array_equal(clf.coefs_[0], W)  # it went on training
    clf.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match="warm_start"):
        clf.fit(X, y)


# ---------------------------------------------------------------- warnings, errors, inputs
def test_convergence_warning_only_when_max_iter_is_reached():
    X, y = digits(200)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        MLPClassifier(max_iter=3, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = MLPClassifier(max_iter=500, tol=0.5, n_iter_no_change=1, random_state=0).fit(X, y)
    assert clf.n_iter_ < 500


@pytest.mark.parametrize("params,match", [
    (dict(alpha=-1.0), "'alpha' parameter"),
    (dict(solver="newton"), "'solver' parameter"),
    (dict(activation="softmax"), "'activation' parameter"),
    (dict(momentum=1.0), "'momentum' parameter"),
    (dict(batch_size=0), "'batch_size' parameter"),
    (dict(backend="gpu"), "'backend' parameter"),
    (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes must be > 0"),
    (dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
])
def test_bad_parameters_name_themselves_at_fit(params, match):
    X, y = digits(50)
    est = MLPClassifier(**params)  # never at construction (scikit-learn's rule)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


def test_sparse_input_is_densified():
    import scipy.sparse as scipy_sparse

    X, y = digits(200)
    kw = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = MLPClassifier(**kw).fit(X, y)
        sparse = MLPClassifier(**kw).fit(scipy_sparse.csr_matrix(X), y)
    np.testing.assert_array_equal(dense.predict_proba(X), sparse.predict_proba(scipy_sparse.csr_array(X)))


def test_verbose_prints_the_loss_per_iteration(capsys):
    X, y = digits(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(max_iter=2, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Iteration ") == 2 and "loss = " in out


def test_float32_default_and_float64_option():
    X, y = digits(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf32 = MLPClassifier(max_iter=2, random_state=0).fit(X, y)
        clf64 = MLPClassifier(max_iter=2, random_state=0, dtype="float64").fit(X, y)
    assert clf32.network_.dtype == np.float32 and clf32.predict_proba(X).dtype == np.float32
    assert clf64.network_.dtype == np.float64 and clf64.predict_proba(X).dtype == np.float64
    np.testing.assert_allclose(clf32.predict_proba(X), clf64.predict_proba(X), atol=1e-4)


def test_diverging_training_raises_value_error():
    X, y = digits(200)
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(solver="sgd", learning_rate_init=1e6, max_iter=20, random_state=0).fit(X * 1e3, y * 1e3)
