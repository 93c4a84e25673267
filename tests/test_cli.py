"""The ``pynn`` command line: ``main([...])`` in-process, and ``python -m pynn`` once per kind of
outcome in a subprocess.

Oracles: predictions are recomputed here from the saved model with NumPy (the metadata's
scaling, then ``net.predict``), the evaluate figures from those predictions, and ``pynn explain``'s
numbers from the seed's equations in exact float64 written out in this file. Exit codes: 0
success, 1 a data or model problem (one line ``pynn: error: ...`` on stderr, no traceback), 2 a
usage error (argparse).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import pynn
from conftest import require
from pynn.cli import main

FEATURES = ["width", "height", "depth", "weight"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def num(v):
    return repr(float(v))  # exact: the CSV holds the same float64 values as X


def read_csv(path_or_text):
    text = path_or_text.read_text() if hasattr(path_or_text, "read_text") else path_or_text
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:]


def blobs(n=240, classes=("cat", "dog", "emu"), seed=0, scale=(1.0, 10.0, 100.0, 0.1)):
    """Separable clusters with text labels; features on very different scales."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    centers = rng.normal(0, 3, size=(len(classes), 4))
    X = (centers[y] + rng.normal(0, 0.5, size=(n, 4))) * np.array(scale)
    return X, np.array(classes)[y]


@pytest.fixture
def iris_like(tmp_path):
    X, labels = blobs()
    path = write_csv(tmp_path / "train.csv", [*FEATURES, "kind"], [[*map(num, x), lab] for x, lab in zip(X, labels)])
    return path, X, labels


def error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pynn: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- train, predict, evaluate
def test_train_predict_evaluate_classification_csv(tmp_path, capsys, iris_like):
    data, X, labels = iris_like
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", data, "--target", "kind", "--hidden", "16,8", "--epochs", 40,
                         "--lr", 0.01, "--standardize", "--validation-split", 0.25, "--out", model)
    assert code == 0 and err == ""
    assert "classification of 3 classes" in out and "network 4-16-8-3" in out
    assert re.search(r"^epoch 40/40 .*val_loss .*samples/s$", out, re.M)  # progress, one line per epoch
    assert f"saved the model to {model}" in out

    net = pynn.load(model)
    meta = net.metadata
    assert meta["features"] == FEATURES and meta["target"] == "kind" and meta["classes"] == ["cat", "dog", "emu"]
    assert meta["task"] == "classification" and meta["loss"] == "cross_entropy"
    assert net.classes == meta["classes"] and net.feature_names == FEATURES  # the format's own fields too
    assert [l.activation for l in net.layers] == ["relu", "relu", "softmax"]
    # --standardize: the network's own scaler, measured on the 180 training examples (not all 240)
    train = np.sort(np.random.default_rng(0).permutation(len(X))[:180])  # --seed 0's split
    np.testing.assert_allclose(net.scaler.mean, X[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(net.scaler.scale, X[train].std(axis=0), rtol=1e-12)
    assert "x_mean" not in meta

    # predict: labels and probabilities, recomputed from the saved network
    preds = tmp_path / "p.csv"
    code, out, err = run(capsys, "predict", model, data, "--proba", "--out", preds)
    assert (code, out, err) == (0, "", "")
    header, rows = read_csv(preds)
    assert header == ["kind", "p(kind=cat)", "p(kind=dog)", "p(kind=emu)"]
    P = net.predict(X.T)  # raw inputs: the network applies its scaler
    want = np.array(meta["classes"])[P.argmax(axis=0)]
    assert [r[0] for r in rows] == want.tolist()
    np.testing.assert_allclose(np.array([r[1:] for r in rows], float), P.T, rtol=1e-6)
    accuracy = float(np.mean(want == labels))
    assert accuracy > 0.95  # the clusters are separable: training worked

    # evaluate: the same accuracy, and the network's own loss
    code, out, err = run(capsys, "evaluate", model, data)
    assert code == 0 and err == ""
    assert re.search(r"^accuracy\s+(\S+)$", out, re.M).group(1) == f"{accuracy:.6g}"
    idx = np.searchsorted(meta["classes"], labels)
    J = net.loss(X.T, idx, "cross_entropy")
    assert re.search(r"^loss\s+(\S+)\s+\(cross_entropy\)$", out, re.M).group(1) == f"{J:.6g}"


def test_predict_to_stdout_reads_columns_by_name(tmp_path, capsys, iris_like):
    data, X, labels = iris_like
    model = tmp_path / "m.npz"
    assert run(capsys, "train", data, "--target", "kind", "--epochs", 5, "--out", model, "--quiet")[:2] == (0, "")
    code, out, _ = run(capsys, "predict", model, data)
    assert code == 0
    # the same data with the columns shuffled, an extra column and no target: the same predictions
    order = [3, 1, 0, 2]
    other = write_csv(tmp_path / "other.csv", ["note", *[FEATURES[j] for j in order]],
                      [["x", *map(num, x[order])] for x in X])
    code, out2, _ = run(capsys, "predict", model, other)
    assert code == 0 and out2 == out
    header, rows = read_csv(out)
    net = pynn.load(model)
    want = np.array(net.metadata["classes"])[net.predict(X.T).argmax(axis=0)]  # no --standardize: raw X
    assert header == ["kind"] and [r[0] for r in rows] == want.tolist()


def test_binary_integer_labels_use_one_sigmoid_output(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 2 * X[:, 1] > 0).astype(int)
    data = tmp_path / "d.npz"
    np.savez(data, X=X, y=y)
    model = tmp_path / "m.npz"
    code, out, _ = run(capsys, "train", data, "--epochs", 60, "--lr", 0.02, "--out", model, "--dtype", "float64")
    assert code == 0 and "features -> 'y': classification of 2 classes" in out
    net = pynn.load(model)
    assert net.sizes[-1] == 1 and net.layers[-1].activation == "sigmoid" and net.metadata["classes"] == [0, 1]
    code, out, _ = run(capsys, "predict", model, data, "--proba")
    header, rows = read_csv(out)
    assert header == ["y", "p(y=0)", "p(y=1)"]
    p1 = net.predict(X.T)[0]
    got = np.array([r[1:] for r in rows], float)
    np.testing.assert_allclose(got, np.column_stack([1 - p1, p1]), rtol=1e-15)
    assert [int(r[0]) for r in rows] == (p1 > 0.5).astype(int).tolist()
    code, out, _ = run(capsys, "evaluate", model, data)
    acc = float(re.search(r"^accuracy\s+(\S+)$", out, re.M).group(1))
    assert acc == pytest.approx(np.mean((p1 > 0.5) == y), abs=1e-6) and acc > 0.9


def test_regression_npz_with_standardized_targets(tmp_path, capsys):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5)) * [1, 10, 100, 1, 1]
    y = 1000 + 50 * X[:, 0] + 3 * X[:, 1] + 0.2 * X[:, 2]
    data = tmp_path / "reg.npz"
    np.savez(data, features=X, price=y, feature_names=np.array(["a", "b", "c", "d", "e"]))
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", data, "--x-key", "features", "--y-key", "price", "--hidden", 32,
                         "--activation", "tanh", "--epochs", 80, "--lr", 0.01, "--standardize", "--out", model)
    assert code == 0, err
    assert "'price': regression" in out
    net = pynn.load(model)
    meta = net.metadata
    assert meta["features"] == ["a", "b", "c", "d", "e"] and meta["outputs"] == ["price"]
    assert net.layers[-1].activation == "linear" and meta["loss"] == "mse"
    code, out, _ = run(capsys, "predict", model, data, "--x-key", "features")
    header, rows = read_csv(out)
    got = np.array(rows, float)[:, 0]
    want = net.predict(X.T)[0].astype(np.float64) * meta["y_std"][0] + meta["y_mean"][0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert header == ["price"]
    rmse = float(np.sqrt(np.mean((got - y) ** 2)))
    assert rmse < 0.1 * y.std()  # it learned the linear map
    code, out, _ = run(capsys, "evaluate", model, data, "--x-key", "features")
    assert code == 0
    assert float(re.search(r"^rmse\s+(\S+)$", out, re.M).group(1)) == pytest.approx(rmse, rel=1e-4)
    assert re.search(r"^loss\s+\S+\s+\(mse, on standardised targets\)$", out, re.M)
    code, _, err = run(capsys, "predict", model, data, "--x-key", "features", "--proba")
    assert code == 1 and "--proba applies to classification" in error_line(err)


@pytest.mark.parametrize("values, task", [
    (np.arange(200) % 20, "classification"),          # whole numbers, 20 distinct: labels
    (np.arange(200) % 21, "regression"),              # 21 distinct: a quantity
    (np.arange(200) % 2 + 0.5, "regression"),         # not whole numbers
    (np.array(["yes", "no"] * 100), "classification"),
    (np.arange(200) % 2 == 0, "classification"),      # booleans
])
def test_task_rule(tmp_path, capsys, values, task):
    data = tmp_path / "d.npz"
    np.savez(data, X=np.random.default_rng(0).normal(size=(200, 2)), y=values)
    code, out, _ = run(capsys, "train", data, "--epochs", 1, "--out", tmp_path / "m.npz")
    assert code == 0 and f"'y': {task}" in out
    assert pynn.load(tmp_path / "m.npz").metadata["task"] == task


def test_task_override(tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, X=np.random.default_rng(0).normal(size=(50, 2)), y=np.arange(50) % 3)
    code, out, _ = run(capsys, "train", data, "--epochs", 1, "--task", "regression", "--out", tmp_path / "m.npz")
    assert code == 0 and "'y': regression" in out
    assert pynn.load(tmp_path / "m.npz").sizes[-1] == 1


def test_quiet_and_plot(tmp_path, capsys, iris_like):
    require("matplotlib")
    data, _, _ = iris_like
    png = tmp_path / "loss.png"
    code, out, err = run(capsys, "train", data, "--target", "kind", "--epochs", 3, "--validation-split", 0.2,
                         "--out", tmp_path / "m.npz", "--plot", png, "--quiet")
    assert (code, out, err) == (0, "", "")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- errors: exit 1, one line
@pytest.fixture
def model(tmp_path, capsys, iris_like):
    data, _, _ = iris_like
    path = tmp_path / "m.npz"
    assert run(capsys, "train", data, "--target", "kind", "--epochs", 2, "--out", path, "--quiet")[0] == 0
    return path


def test_missing_files(tmp_path, capsys, model, iris_like):
    data = iris_like[0]
    code, _, err = run(capsys, "train", tmp_path / "nope.csv", "--target", "kind")
    assert code == 1 and "data file" in error_line(err) and "nope.csv' does not exist" in err
    code, _, err = run(capsys, "predict", tmp_path / "nope.npz", data)
    assert code == 1 and "model file" in error_line(err) and "does not exist" in err
    code, _, err = run(capsys, "evaluate", model, tmp_path / "nope.csv")
    assert code == 1 and "nope.csv' does not exist" in error_line(err)


def test_unknown_target_column(tmp_path, capsys, iris_like):
    code, _, err = run(capsys, "train", iris_like[0], "--target", "species", "--out", tmp_path / "x.npz")
    line = error_line(err)
    assert code == 1 and "no column 'species'" in line and "width, height, depth, weight, kind" in line
    assert not (tmp_path / "x.npz").exists()


def test_csv_without_target_option(tmp_path, capsys, iris_like):
    code, _, err = run(capsys, "train", iris_like[0], "--out", tmp_path / "x.npz")
    assert code == 1 and "--target is required" in error_line(err)


@pytest.mark.parametrize("cell, shown", [("abc", "'abc'"), ("", "an empty cell"), ("nan", "'nan'")])
def test_bad_feature_value_names_column_and_line(tmp_path, capsys, cell, shown):
    rows = [["1", "2", "a"], ["3", cell, "b"], ["5", "6", "a"]]
    data = write_csv(tmp_path / "d.csv", ["p", "q", "t"], rows)
    code, _, err = run(capsys, "train", data, "--target", "t", "--out", tmp_path / "m.npz")
    line = error_line(err)
    assert code == 1 and "column 'q'" in line and f"line 3 has {shown}" in line


def test_ragged_csv(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("a,b,t\n1,2,x\n3,4\n")
    code, _, err = run(capsys, "train", data, "--target", "t")
    assert code == 1 and "line 3 has 2 fields, the header has 3" in error_line(err)


def test_predict_data_lacking_a_feature_column(tmp_path, capsys, model):
    data = write_csv(tmp_path / "d.csv", ["width", "height", "weight"], [["1", "2", "3"]])
    code, out, err = run(capsys, "predict", model, data)
    assert code == 1 and out == "" and "lacks column(s) 'depth'" in error_line(err)


def test_npz_shape_mismatch(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", X=rng.normal(size=(40, 4)), y=np.arange(40) % 2)
    assert run(capsys, "train", tmp_path / "train.npz", "--epochs", 1, "--out", tmp_path / "m.npz")[0] == 0
    np.savez(tmp_path / "three.npz", X=rng.normal(size=(5, 3)))
    code, _, err = run(capsys, "predict", tmp_path / "m.npz", tmp_path / "three.npz")
    assert code == 1 and "has 3 columns (features); the model expects 4" in error_line(err)
    np.savez(tmp_path / "flat.npz", X=rng.normal(size=12))
    code, _, err = run(capsys, "predict", tmp_path / "m.npz", tmp_path / "flat.npz")
    assert code == 1 and "must be a 2-D numeric array" in error_line(err)
    np.savez(tmp_path / "short.npz", X=rng.normal(size=(5, 4)), y=np.arange(4))
    code, _, err = run(capsys, "evaluate", tmp_path / "m.npz", tmp_path / "short.npz")
    assert code == 1 and "must have one row per example" in error_line(err)
    code, _, err = run(capsys, "train", tmp_path / "train.npz", "--x-key", "features")
    assert code == 1 and "has no array 'features'" in error_line(err) and "it has: X, y" in err


def test_evaluate_needs_the_target_and_known_labels(tmp_path, capsys, model):
    data = write_csv(tmp_path / "d.csv", FEATURES, [["1", "2", "3", "4"]])
    code, _, err = run(capsys, "evaluate", model, data)
    assert code == 1 and "no column 'kind' (the target)" in error_line(err)
    data = write_csv(tmp_path / "e.csv", [*FEATURES, "kind"], [["1", "2", "3", "4", "cat"], ["1", "2", "3", "4", "yak"]])
    code, _, err = run(capsys, "evaluate", model, data)
    assert code == 1 and "labels the model was not trained on: 'yak'" in error_line(err)


def test_model_files_that_are_not_from_train(tmp_path, capsys, iris_like):
    plain = tmp_path / "plain.npz"
    pynn.Network.from_sizes([4, 3], seed=0).save(plain)
    code, _, err = run(capsys, "predict", plain, iris_like[0])
    assert code == 1 and "was not written by 'pynn train'" in error_line(err)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    code, _, err = run(capsys, "predict", junk, iris_like[0])
    assert code == 1 and "is not a readable pynn model file" in error_line(err)


def test_unwritable_output_fails_before_training(tmp_path, capsys, iris_like):
    code, out, err = run(capsys, "train", iris_like[0], "--target", "kind", "--out", tmp_path / "no" / "m.npz")
    assert code == 1 and out == "" and "directory" in error_line(err) and "does not exist" in err


def test_validation_split_too_large(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", ["a", "t"], [["1", "x"], ["2", "y"]])
    code, _, err = run(capsys, "train", data, "--target", "t", "--validation-split", 0.9, "--out", tmp_path / "m.npz")
    assert code == 1 and "--validation-split" in error_line(err)


@pytest.mark.parametrize("argv", [
    ["train", "d.csv", "--hidden", "64,x"],
    ["train", "d.csv", "--epochs", "0"],
    ["train", "d.csv", "--lr", "-1"],
    ["train", "d.csv", "--validation-split", "1"],
    ["train", "d.csv", "--backend", "cuda"],
    ["predict", "m.npz"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "usage: pynn" in capsys.readouterr().err


# ---------------------------------------------------------------- explain
def seed_math(lr):
    """The seed's example in exact float64, written out from the seed's equations."""
    X, Y = np.array([[0.5], [0.2]]), np.array([[1.0]])
    W1, b1 = np.array([[0.1, 0.4], [0.8, 0.6]]), np.array([[0.3], [0.9]])
    W2, b2 = np.array([[0.3, 0.7]]), np.array([[0.5]])
    sigma = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    Z1 = W1 @ X + b1
    A1 = sigma(Z1)
    Z2 = W2 @ A1 + b2
    Yhat = sigma(Z2)
    J = -(Y * np.log(Yhat) + (1 - Y) * np.log(1 - Yhat))
    dZ2 = Yhat - Y
    dW2, db2, dA1 = dZ2 @ A1.T, dZ2, W2.T @ dZ2
    s = A1 * (1 - A1)
    dZ1 = dA1 * s
    dW1, db1 = dZ1 @ X.T, dZ1
    return {"X": X, "Y": Y, "W1": W1, "b1": b1, "W2": W2, "b2": b2, "Z1": Z1, "A1": A1, "Z2": Z2, "Yhat": Yhat,
            "J": J, "dJ/dZ2": dZ2, "dJ/dW2": dW2, "dJ/db2": db2, "dJ/dA1": dA1, "sigma'(Z1)": s, "dJ/dZ1": dZ1,
            "dJ/dW1": dW1, "dJ/db1": db1, "W2'": W2 - lr * dW2, "b2'": b2 - lr * db2, "W1'": W1 - lr * dW1,
            "b1'": b1 - lr * db1}


def parse_explain(out):
    """NAME = [a, b; c, d] or NAME = value, one quantity per line."""
    got = {}
    for line in out.splitlines():
        m = re.match(r"^\s+([^\s#]+) = (\[[^\]]*\]|\S+)", line)
        if m and m.group(1) != "eta":
            text = m.group(2).strip("[]")
            got[m.group(1)] = np.array([[float(v) for v in row.split(",")] for row in text.split(";")])
    return got


@pytest.mark.parametrize("lr", [0.5, 0.1])
def test_explain_prints_the_seed_example_computed_by_the_backend(capsys, backend, dtype, lr):
    code, out, err = run(capsys, "explain", "--backend", backend, "--dtype", dtype.name, "--lr", lr)
    assert code == 0 and err == ""
    assert f"computed by the {backend!r} backend's kernels in {dtype.name}" in out
    got, want = parse_explain(out), seed_math(lr)
    assert list(got) == list(want)  # every quantity, in the seed's order
    tol = dict(rtol=1e-10, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-7)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value.reshape(got[name].shape), **tol, err_msg=name)
        assert got[name].shape == (value.shape if value.size > 1 else (1, 1)), name
    # the seed's own (rounded) figures are shown beside the computed ones
    assert re.search(r"^\s+A1 = \[0\.6058\d*; 0\.8053\d*\]\s+seed: 0\.606; 0\.805$", out, re.M)


# ---------------------------------------------------------------- demo and info
def test_demo_shows_progress_accuracy_and_speed(capsys):
    code, out, _ = run(capsys, "demo", "--epochs", 3, "--n", 300)
    assert code == 0
    first = pynn.available_backends()[0]
    assert f"training on {first!r}" in out
    assert len(re.findall(r"^epoch \d/3 .*accuracy .*samples/s$", out, re.M)) == 3  # the first backend's epochs
    for b in pynn.available_backends():
        m = re.search(rf"^{b}\s+([\d.]+)\s+[\d.]+s\s+[\d,]+\s+[\d.]+s$", out, re.M)
        assert m and 0 <= float(m.group(1)) <= 1, out


def test_info(capsys):
    require("threadpoolctl")
    pynn.Network.from_sizes([2, 1], seed=0)  # loads the default backend
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert f"pynn {pynn.__version__}" in out
    assert f"backends: {', '.join(pynn.available_backends())}" in out
    assert f"threads: {pynn.get_num_threads()}" in out
    if "cpp" in pynn.available_backends():
        assert re.search(r"^  openblas .* pynn's: .*libscipy_openblas", out, re.M), out


# ---------------------------------------------------------------- the real command, in a subprocess
def python_m_pynn(*argv, cwd=None):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "pynn", *map(str, argv)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_python_m_pynn(tmp_path, iris_like):
    r = python_m_pynn("info")
    assert r.returncode == 0 and r.stdout.startswith(f"pynn {pynn.__version__}"), r.stderr
    r = python_m_pynn("evaluate", tmp_path / "missing.npz", iris_like[0])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == f"pynn: error: model file {str(tmp_path / 'missing.npz')!r} does not exist"
    r = python_m_pynn("train", iris_like[0], "--epochs", "zero")
    assert r.returncode == 2 and "argument --epochs: expected a positive integer, got 'zero'" in r.stderr
    # a pipe that closes early (| head) is not an error
    r = subprocess.run(f"{sys.executable} -m pynn explain | head -1", shell=True, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(pynn.__file__))})
    assert r.stdout.startswith("pynn explain") and r.stderr == ""


def test_saved_metadata_is_plain_json(tmp_path, capsys, iris_like):
    """What predict needs is readable without pynn: np.load and json."""
    data, X, _ = iris_like
    run(capsys, "train", data, "--target", "kind", "--epochs", 1, "--standardize", "--out", tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        meta = json.loads(bytes(z["header"]))["metadata"]
    assert meta["features"] == FEATURES and meta["classes"] == ["cat", "dog", "emu"]


def test_predict_reads_an_older_files_scaling_from_metadata(tmp_path, capsys, iris_like):
    """Before the model file had a scaler, pynn train kept --standardize's scaling in metadata
    (x_mean, x_std) and pynn predict applied it: such files still predict the same."""
    data, X, _ = iris_like
    new, old = tmp_path / "new.npz", tmp_path / "old.npz"
    run(capsys, "train", data, "--target", "kind", "--epochs", 3, "--standardize", "--out", new)
    net = pynn.load(new)
    net.metadata = {**net.metadata, "x_mean": net.scaler.mean.tolist(), "x_std": net.scaler.scale.tolist()}
    net.scaler = None
    net.save(old)
    outs = [run(capsys, "predict", m, data, "--proba")[1] for m in (new, old)]
    np.testing.assert_allclose(np.array(read_csv(outs[1])[1])[:, 1:].astype(float),
                               np.array(read_csv(outs[0])[1])[:, 1:].astype(float), rtol=1e-5)
    assert [r[0] for r in read_csv(outs[1])[1]] == [r[0] for r in read_csv(outs[0])[1]]
