"""scikit-learn estimators backed by pynn: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take scikit-learn's ``MLPClassifier``/``MLPRegressor`` parameters with the same names and
meanings, plus ``backend`` and ``dtype``, and train with pynn's fused ``Network.fit``. They
need scikit-learn (``pip install "pynn[sklearn]"``); ``import pynn`` never imports it — only
``import pynn.sklearn`` does.

How they map onto pynn (and where they differ from scikit-learn):

* The network is ``n_features → hidden_layer_sizes → outputs`` with the ``activation`` in every
  hidden layer (``'logistic'`` is pynn's ``"sigmoid"``, ``'identity'`` its ``"linear"``).
  Outputs: one sigmoid unit + bce for two classes, softmax + cross-entropy for more,
  sigmoids + bce on an indicator matrix for multi-label, linear units + mse for regression.
* Weights start as scikit-learn's do (its Glorot-uniform draws, biases included, from
  ``random_state`` in the same order), so with ``shuffle=False`` training follows
  scikit-learn's step for step. With ``shuffle=True`` the batch order comes from a seed drawn
  from ``random_state``, not from scikit-learn's own shuffle.
* ``alpha`` is scikit-learn's L2 penalty ``alpha/(2·n_batch)·Σ‖W‖²`` per batch: each layer gets
  ``Dense.l2 = alpha / batch_size``. The one difference: a last, shorter batch of an epoch
  (``n_samples % batch_size`` examples) is penalised with ``alpha/batch_size``, where
  scikit-learn uses ``alpha/len(batch)``.
* scikit-learn reports the squared error as ``mean((y - p)²)/2`` over samples *and* outputs,
  but its gradient is that of pynn's mse, ``1/2 Σ_k (p_k - y_k)²`` averaged over samples (the
  two differ by the factor ``n_outputs``). The regressor trains on pynn's mse, so its steps are
  scikit-learn's, and reports scikit-learn's value: the data term divided by ``n_outputs``,
  plus the penalty. For several outputs and ``alpha > 0`` the penalty in ``loss_curve_`` is
  taken at the mean of the weights' squared norms at the epoch's start and end, where
  scikit-learn sums it batch by batch.
* Adam is pynn's (PyTorch's): ``epsilon`` is added to the bias-corrected ``√v̂``, where
  scikit-learn adds it to ``√v``; the two agree except where ``√v`` is near ``epsilon``.
  SGD's momentum is PyTorch's form, identical to scikit-learn's at a constant learning rate;
  under ``'invscaling'``/``'adaptive'`` the velocity is not rescaled when the rate changes.
* ``solver='lbfgs'`` runs ``scipy.optimize.minimize(method="L-BFGS-B")`` over the network's
  flat parameter buffer with pynn computing the loss and gradient, as scikit-learn does.
* ``dtype`` (default ``"float32"``) is the precision pynn computes in; scikit-learn computes
  in the input's dtype. ``predict_proba`` and the regressor's ``predict`` return that dtype.
  Sparse input is accepted but densified (pynn's kernels are dense).
* ``sample_weight`` (in ``fit``, ``partial_fit`` and ``score``) weights each example's loss:
  every batch's data term is ``Σ sᵢLᵢ / Σ sᵢ``, as scikit-learn's. Its penalty is
  ``alpha/(2·Σ sᵢ)·Σ‖W‖²`` with the batch's own ``Σ sᵢ``; pynn's penalty is fixed per fit, so
  each layer gets ``Dense.l2 = alpha / (batch_size · mean(s))`` — the same when the weights are
  equal (and for L-BFGS, whose one batch is the whole data: ``alpha / Σ sᵢ`` exactly). With
  weights, ``loss_curve_`` holds the epoch's weighted mean loss, where scikit-learn averages
  the batches' weighted means by batch length. The early-stopping split takes the weights
  with it, and ``validation_scores_`` are weighted, as scikit-learn's.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import _validate as V
from .backends import BACKENDS, resolve
from .network import Dense, Network
from .optimizers import SGD, Adam
from .training import Callback, Diverged

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names -> pynn's
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_OUT_NAMES = {"linear": "identity", "sigmoid": "logistic", "softmax": "softmax"}
_LOSS_OF_OUTPUT = {"linear": "mse", "sigmoid": "bce", "softmax": "cross_entropy"}


def _say(line: str) -> None:
    """verbose=True's report, on stdout as scikit-learn's (and pynn's Progress) writes it."""
    sys.stdout.write(line + "\n")


class _EpochEnd(Callback):
    """Runs scikit-learn's end-of-iteration bookkeeping after each of fit's epochs."""

    def __init__(self, est: "_BaseMLP", n_train: int, val) -> None:
        self.est, self.n_train, self.val = est, n_train, val
        self.m = est.n_outputs_ if est._loss_name() == "mse" else 1
        self.pen0 = 0.0

    def on_epoch_begin(self, net, epoch, logs) -> None:
        if self.m > 1:
            self.pen0 = net._penalty()

    def on_epoch_end(self, net, epoch, logs) -> None:
        loss = logs["loss"]
        if self.m > 1:  # scikit-learn's report: data term / n_outputs + penalty
            pen = 0.5 * (self.pen0 + net._penalty())
            loss = (loss - pen) / self.m + pen
        if self.est._end_of_iteration(loss, self.n_train, self.val):
            net.stop_training = True


class _BaseMLP(BaseEstimator):
    """The shared part of MLPClassifier and MLPRegressor (scikit-learn's
    ``BaseMultilayerPerceptron`` on pynn)."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],  # scikit-learn allows 1; pynn's SGD < 1
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "backend": [StrOptions({"auto", *BACKENDS})],
        "dtype": "no_validation",  # checked by pynn: "float32", "float64" or the NumPy types
    }

    def __init__(self, hidden_layer_sizes, activation, *, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, momentum,
                 nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change,
                 max_fun, backend, dtype):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype

    # ------------------------------------------------------------------ fitted state
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_net")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted, and densified
        return tags

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weights per layer in scikit-learn's orientation: ``coefs_[i]`` is ``(n_in, n_out)``,
        a view of pynn's ``layers[i].W`` (``(n_out, n_in)``) transposed; writing to it changes
        the model."""
        net = self._fitted_net("coefs_")
        return [layer.W.T for layer in net.layers]

    @coefs_.setter
    def coefs_(self, value) -> None:
        net = self._fitted_net("coefs_")
        self._set_layers(net, value, "coefs_", lambda layer, a: setattr(layer, "W", np.asarray(a).T))

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Biases per layer, ``intercepts_[i]`` of shape ``(n_out,)``: views of pynn's ``layers[i].b``."""
        net = self._fitted_net("intercepts_")
        return [layer.b.reshape(-1) for layer in net.layers]

    @intercepts_.setter
    def intercepts_(self, value) -> None:
        net = self._fitted_net("intercepts_")
        self._set_layers(net, value, "intercepts_", lambda layer, a: setattr(layer, "b", np.asarray(a)))

    @property
    def network_(self) -> Network:
        """The fitted :class:`pynn.Network` (inputs ``(n_features, n_samples)``, as pynn wants)."""
        return self._fitted_net("network_")

    def _fitted_net(self, name: str) -> Network:
        net = self.__dict__.get("_net")
        if net is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r} before it is fitted")
        return net

    @staticmethod
    def _set_layers(net: Network, value, name: str, assign) -> None:
        value = list(value)
        if len(value) != len(net.layers):
            raise ValueError(f"{name} must hold {len(net.layers)} arrays, one per layer, got {len(value)}")
        old = net._params.copy()
        try:
            for layer, a in zip(net.layers, value):
                assign(layer, a)
        except (TypeError, ValueError) as e:
            net._params[...] = old  # all or nothing
            raise type(e)(f"{name}: {e}") from None

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # object.__getstate__ hands out __dict__ itself
        net = state.pop("_net", None)
        if net is not None:  # the Network holds compiled objects: keep what rebuilds it
            state["_net"] = {"layers": [(l.n_in, l.n_out, l.activation, l.l1, l.l2) for l in net.layers],
                             "params": net._params.copy(), "dtype": net.dtype.name, "seed": net.seed}
            opt = state.pop("_optimizer", None)
            if opt is not None:
                st = opt._state.get(net, {})
                state["_optimizer"] = {"class": type(opt).__name__, "config": opt.get_config(),
                                       "state": {k: np.array(st[k]) for k in ("m", "v", "t") if k in st}}
        return state

    def __setstate__(self, state: dict) -> None:
        net_state = state.pop("_net", None)
        opt_state = state.pop("_optimizer", None)
        super().__setstate__(state)
        if net_state is None:
            return
        layers = [Dense(n_in, n_out, act, l1=l1, l2=l2) for n_in, n_out, act, l1, l2 in net_state["layers"]]
        try:
            backend = resolve(self.backend)
        except ValueError:  # e.g. pickled where the compiled core was built, loaded where it is not
            backend = "auto"
        net = Network(layers, dtype=net_state["dtype"], backend=backend, seed=net_state["seed"])
        net._params[...] = net_state["params"]
        self._net = net
        if opt_state is not None:
            opt = (SGD if opt_state["class"] == "SGD" else Adam)(**opt_state["config"])
            st = opt.state(net)
            for k, a in opt_state["state"].items():
                if k in st and st[k].shape == a.shape:
                    st[k][...] = a
            self._optimizer = opt

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each example (not all zero); None weighs them equally.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._validate_params()
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def _check_solver(self) -> bool:
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def _hidden_sizes(self) -> list[int]:
        h = self.hidden_layer_sizes
        h = list(h) if hasattr(h, "__iter__") else [h]
        if any(not isinstance(v, numbers.Integral) or isinstance(v, bool) or v <= 0 for v in h):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {h}.")
        return [int(v) for v in h]

    def _net_dtype(self) -> np.dtype:
        return V.check_dtype(self.dtype)

    def _as_X(self, X, reset: bool, *y):
        """X validated and converted once to the network's dtype, (n_samples, n_features);
        sparse input densified. With y, ``(X, y)`` (validate_data's checks of both)."""
        kw = dict(accept_sparse=["csr", "csc", "coo"], dtype=self._net_dtype(), reset=reset)
        if y:
            X, yv = validate_data(self, X, y[0], multi_output=True, y_numeric=not is_classifier(self), **kw)
        else:
            X = validate_data(self, X, **kw)
        if scipy.sparse.issparse(X):
            X = X.toarray()
        return (X, yv) if y else X

    def _fit(self, X, y, incremental: bool, sample_weight=None):
        hidden = self._hidden_sizes()
        dtype = self._net_dtype()
        resolve(self.backend)  # an unavailable backend is a ValueError before any work
        first_pass = not hasattr(self, "_net") or (not self.warm_start and not incremental)
        X, targets, n_outputs = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:  # float64, (n_samples,), >= 0, not all zero
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        sizes = [X.shape[1], *hidden, n_outputs]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(sizes, dtype)
        else:
            self._check_warm_net(sizes, dtype)
        net = self._net
        if self.solver in ("sgd", "adam"):
            self._fit_stochastic(net, X, targets, incremental, sample_weight)
        else:
            self._fit_lbfgs(net, X, targets, sample_weight)
        return self

    def _initialize(self, sizes: list[int], dtype: np.dtype) -> None:
        """A new network whose weights are scikit-learn's initial ones (_init_coef, same draws)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = sizes[-1]
        self.n_layers_ = len(sizes)
        out = self._output_activation()
        self.out_activation_ = _OUT_NAMES[out]
        factor = 2.0 if self.activation == "logistic" else 6.0
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = math.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            act = out if i == len(sizes) - 2 else _ACTIVATIONS[self.activation]
            layers.append(Dense(fan_in, fan_out, act, init=(coef.T, intercept)))
        self._net = Network(layers, dtype=dtype, backend=self.backend)
        self.__dict__.pop("_optimizer", None)
        self._best_params = self._net._params.copy()
        if self.solver in ("sgd", "adam"):
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _check_warm_net(self, sizes: list[int], dtype: np.dtype) -> None:
        """warm_start / partial_fit continue the fitted network: its shape must still fit."""
        net = self._net
        if net.sizes != sizes or any(l.activation != _ACTIVATIONS[self.activation] for l in net.layers[:-1]):
            raise ValueError(
                f"warm_start and partial_fit continue the fitted network (layer sizes {net.sizes}); "
                f"hidden_layer_sizes, activation and the data now ask for sizes {sizes} with activation "
                f"{self.activation!r}. Set warm_start=False to start afresh.")
        backend = resolve(self.backend)
        if net.dtype != dtype or net.backend != backend:
            self._net = net._clone(dtype=dtype, backend=backend)
            self.__dict__.pop("_optimizer", None)
            self._best_params = self._best_params.astype(dtype)

    def _loss_name(self) -> str:
        return _LOSS_OF_OUTPUT[self._net.layers[-1].activation]

    def _set_l2(self, net: Network, n_batch: float) -> None:
        l2 = self.alpha / n_batch
        for layer in net.layers:
            if layer.l2 != l2:
                layer.l2 = l2

    def _make_optimizer(self):
        if self.solver == "sgd":
            momentum = float(self.momentum)
            return SGD(self.learning_rate_init, momentum=momentum,
                       nesterov=bool(self.nesterovs_momentum) and momentum > 0)
        return Adam(self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)

    def _fit_stochastic(self, net: Network, X: np.ndarray, targets: np.ndarray, incremental: bool,
                        sample_weight: np.ndarray | None) -> None:
        if not incremental or "_optimizer" not in self.__dict__:
            self._optimizer = self._make_optimizer()
            self._lr = float(self.learning_rate_init)  # scikit-learn's units
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        val = None
        if self.early_stopping:
            # stratified as scikit-learn's code does it: for binary targets only (its
            # documentation also promises multi-class); the same draws give the same split
            binary = is_classifier(self) and self.n_outputs_ == 1
            stratify = targets[0] if binary else None
            idx = np.arange(X.shape[0])
            tr, va = train_test_split(idx, random_state=self._random_state, test_size=self.validation_fraction,
                                      stratify=stratify)
            if va.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            X, X_val = X[tr], X[va]
            val = (X_val.T, targets[..., va], None if sample_weight is None else sample_weight[va])
            targets = targets[..., tr]
            if sample_weight is not None:
                sample_weight = sample_weight[tr]
                if not sample_weight.any():
                    raise ValueError("Sample weights of the training part (after the early-stopping split) must "
                                     "contain at least one non-zero number.")
        n = X.shape[0]
        if self.batch_size == "auto":
            bs = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            bs = int(np.clip(self.batch_size, 1, n))
        # scikit-learn's per-batch alpha / Σ s over the batch, at the mean weight (module docstring)
        self._set_l2(net, bs * (1.0 if sample_weight is None else float(sample_weight.mean())))
        self.n_iter_ = 0
        epochs = 1 if incremental else self.max_iter
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        self._stopped = False
        try:  # health=False: no TrainingHealthWarning (scikit-learn's users expect its warnings only)
            history = net.fit(X.T, targets, loss=self._loss_name(), optimizer=self._optimizer, epochs=epochs,
                              batch_size=bs, shuffle=bool(self.shuffle), seed=seed, sample_weight=sample_weight,
                              callbacks=[_EpochEnd(self, n, val)], verbose=0, health=False)
        except Diverged as e:
            raise ValueError("Solver produced non-finite parameter weights: " + str(e) + ". The input data may "
                             "contain large values and need to be preprocessed, or learning_rate_init is too "
                             "large.") from None
        if history.stop_reason == "interrupted":
            warnings.warn("Training interrupted by user.")
        elif not incremental and not self._stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning)
        if self.early_stopping:  # restore the best weights, as scikit-learn does
            net._params[...] = self._best_params

    def _end_of_iteration(self, loss: float, n_train: int, val) -> bool:
        """scikit-learn's bookkeeping after an epoch; True stops training."""
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += n_train
        self.loss_curve_.append(loss)
        if self.verbose:
            _say("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
        self._update_no_improvement_count(val)
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
            self._optimizer.lr = self._lr
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation score" if self.early_stopping else "Training loss"
            msg = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."

            if self.solver == "sgd" and self.learning_rate == "adaptive" and self._lr > 1e-6:
                self._lr /= 5.0
                self._optimizer.lr = self._lr
                self._no_improvement_count = 0
                if self.verbose:
                    _say(msg + " Setting learning rate to %f" % self._lr)
                return False
            if self.verbose:
                _say(msg + (" Learning rate too small. Stopping." if self.learning_rate == "adaptive"
                             and self.solver == "sgd" else " Stopping."))
            self._stopped = True
            return True
        return False

    def _update_no_improvement_count(self, val) -> None:
        if self.early_stopping:
            score = self._val_score(*val)
            self.validation_scores_.append(score)
            if self.verbose:
                _say("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params[...] = self._net._params
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, net: Network, X: np.ndarray, targets: np.ndarray, sample_weight: np.ndarray | None) -> None:
        """scipy's L-BFGS-B over the flat parameter buffer; pynn gives J and its gradient."""
        self._set_l2(net, X.shape[0] if sample_weight is None else float(sample_weight.sum()))
        Xv, Yv, loss = net._validated(X.T, targets, self._loss_name())
        m = self.n_outputs_ if loss == "mse" else 1
        params, grads = net._params, net._grads

        def fun(p: np.ndarray) -> tuple[float, np.ndarray]:
            # scikit-learn's pair: its reported loss (data term / n_outputs for mse) and the
            # gradient of pynn's objective, which is the gradient scikit-learn computes
            params[...] = p
            J = net._loss_and_grads(Xv, Yv, loss, sample_weight)
            if m > 1:
                pen = net._penalty()
                J = (J - pen) / m + pen
            return J, grads.astype(np.float64)

        res = scipy.optimize.minimize(fun, params.astype(np.float64), method="L-BFGS-B", jac=True,
                                      options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if res.status != 0:
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}): "
                          f"{res.message}. Increase the number of iterations (max_iter) or scale the data.",
                          ConvergenceWarning)
        self.n_iter_ = min(int(res.nit), self.max_iter)
        self.loss_ = float(res.fun)
        params[...] = res.x
        if not np.isfinite(params).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")

    # ------------------------------------------------------------------ prediction
    def _outputs(self, X) -> np.ndarray:
        """Network outputs, (n_samples, n_outputs): the transpose of pynn's (n_outputs, n_samples)."""
        check_is_fitted(self)
        X = self._as_X(X, reset=False)
        return self._net.predict(X.T).T


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier on pynn, a drop-in for scikit-learn's ``MLPClassifier``.

    It minimises the log-loss (cross-entropy) with Adam, SGD or L-BFGS; binary, multi-class and
    multi-label targets. The parameters have scikit-learn's names and meanings (see
    :class:`sklearn.neural_network.MLPClassifier`); the module docstring lists where pynn
    differs.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The optimiser.
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (divided by the batch size).
    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule (solver='sgd' only).
    learning_rate_init : float, default=0.001
        Initial learning rate (sgd, adam).
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Shuffle the examples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the early-stopping split and the shuffling.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no progress.
    verbose : bool, default=False
        Print the loss after every epoch.
    warm_start : bool, default=False
        Continue from the previous fit's weights.
    momentum : float, default=0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default=True
        Use Nesterov momentum (sgd with momentum > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop when its accuracy
        stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
        Held-out fraction for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
        Adam's epsilon.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations (lbfgs).
    backend : {'auto', 'cpp', 'numba', 'numpy'}, default='auto'
        pynn backend.
    dtype : {'float32', 'float64'}, default='float32'
        Precision pynn computes in.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    loss_ : float
        The loss after the last epoch (or of the lbfgs solution).
    best_loss_ : float or None
        Lowest ``loss_curve_`` value (None with early stopping).
    loss_curve_ : list of float
        Loss per epoch (mean over the epoch's batches, scikit-learn's definition).
    validation_scores_ : list of float or None
        Validation accuracy per epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray
        ``coefs_[i]`` has shape ``(n_in, n_out)`` (scikit-learn's orientation).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` has shape ``(n_out,)``.
    network_ : pynn.Network
        The fitted network (pynn's orientation).
    n_features_in_ : int
        Number of features seen during fit.
    n_iter_ : int
        Epochs (or lbfgs iterations) run by the last fit.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output units.
    out_activation_ : str
        'logistic' or 'softmax'.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from pynn.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=1000, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend="auto", dtype="float32"):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         backend=backend, dtype=dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _output_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """(X, targets, n_outputs): X (n, f) in the network's dtype; targets as pynn takes them:
        class indices (n,) for multi-class (softmax), else the binarised labels (K, n) as floats."""
        X, y = self._as_X(X, reset, y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                     f"call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        if self._label_binarizer.y_type_ == "multiclass":  # indices, not an (n, K) one-hot matrix
            return X, np.searchsorted(self.classes_, y).astype(np.int64), len(self.classes_)
        Y = self._label_binarizer.transform(y)
        return X, np.ascontiguousarray(Y.T, dtype=self._net_dtype()), Y.shape[1]

    def _val_score(self, X_val_T: np.ndarray, targets_val: np.ndarray, sw: np.ndarray | None) -> float:
        """Accuracy on the held-out set (scikit-learn's accuracy_score of predict, weighted by ``sw``)."""
        out = self._net.predict(X_val_T)
        if not np.isfinite(out).all():
            return np.nan
        if targets_val.ndim == 1:
            right = out.argmax(axis=0) == targets_val
        else:
            right = np.all((out > 0.5) == (targets_val > 0.5), axis=0)
        return float(np.average(right, weights=sw))

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The target labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each example (not all zero).
        classes : array of shape (n_classes,), default=None
            All the classes across calls; required on the first call (as scikit-learn).

        Returns
        -------
        self : object
            The updated estimator.
        """
        self._validate_params()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        out = self._outputs(X)
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The probability of each class, in the order of ``classes_`` (for multi-label, each
            label's own probability).
        """
        out = self._outputs(X)
        if self.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X):
        """The log of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        p = np.array(self.predict_proba(X))
        return np.log(p, out=p)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor on pynn, a drop-in for scikit-learn's ``MLPRegressor``.

    It minimises scikit-learn's squared error ``mean((y - p)²)/2`` (linear outputs; one or more
    targets) with Adam, SGD or L-BFGS. Parameters and attributes are those of
    :class:`MLPClassifier` (scikit-learn's names and meanings) without ``classes_``;
    ``out_activation_`` is ``'identity'`` and ``validation_scores_`` hold R².

    Parameters
    ----------
    loss : {'squared_error'}, default='squared_error'
        The loss (scikit-learn's ``'poisson'`` is not offered by this estimator).
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The optimiser.
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (divided by the batch size).
    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule (solver='sgd' only).
    learning_rate_init : float, default=0.001
        Initial learning rate (sgd, adam).
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Shuffle the examples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the early-stopping split and the shuffling.
    tol : float, default=1e-4
        Improvement below which an epoch counts as no progress.
    verbose : bool, default=False
        Print the loss after every epoch.
    warm_start : bool, default=False
        Continue from the previous fit's weights.
    momentum : float, default=0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default=True
        Use Nesterov momentum (sgd with momentum > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its R² stops improving.
    validation_fraction : float, default=0.1
        Held-out fraction for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
        Adam's epsilon.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations (lbfgs).
    backend : {'auto', 'cpp', 'numba', 'numpy'}, default='auto'
        pynn backend.
    dtype : {'float32', 'float64'}, default='float32'
        Precision pynn computes in.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, t_ : see MLPClassifier
        Training records, in scikit-learn's units.
    coefs_ : list of ndarray
        ``coefs_[i]`` has shape ``(n_in, n_out)`` (scikit-learn's orientation).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` has shape ``(n_out,)``.
    network_ : pynn.Network
        The fitted network.
    n_features_in_, n_iter_, n_layers_, n_outputs_, out_activation_ : see MLPClassifier
        As scikit-learn's.

    Examples
    --------
    >>> import numpy as np
    >>> from pynn.sklearn import MLPRegressor
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=500, random_state=0).fit(X, X.sum(axis=1))
    >>> reg.predict(X[:4]).shape
    (4,)
    """

    _parameter_constraints: dict = {**_BaseMLP._parameter_constraints, "loss": [StrOptions({"squared_error"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend="auto", dtype="float32"):
        self.loss = loss
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         backend=backend, dtype=dtype)

    def _output_activation(self) -> str:
        return "linear"

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        X, y = self._as_X(X, reset, y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, np.ascontiguousarray(Y.T, dtype=self._net_dtype()), Y.shape[1]

    def _val_score(self, X_val_T: np.ndarray, targets_val: np.ndarray, sw: np.ndarray | None) -> float:
        """R² on the held-out set (scikit-learn's r2_score of predict, weighted by ``sw``)."""
        out = self._net.predict(X_val_T)
        if not np.isfinite(out).all():
            return np.nan
        return float(r2_score(targets_val.T, out.T, sample_weight=sw))

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each example (not all zero).

        Returns
        -------
        self : object
            The updated estimator.
        """
        self._validate_params()
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        out = self._outputs(X)
        return out.ravel() if out.shape[1] == 1 else out

