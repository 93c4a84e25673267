"""Ctrl-C during ``fit``: training stops after the step in progress, ``fit`` returns the History so
far (``stop_reason == "interrupted"``), and the network holds exactly the weights of the last
completed step — checked against a replay that stops after the same number of steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import pynn

N, BS = 600, 20
N_BATCHES = N // BS


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Python's own SIGINT handler, whatever the suite was started with: a shell's background job
    inherits SIGINT ignored, and then no Ctrl-C reaches fit (these tests would train for 10^7 epochs)."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def setup(backend, rng):
    net = pynn.Network.from_sizes([5, 16, 3], hidden="tanh", output="softmax", backend=backend, seed=4)
    X = rng.normal(size=(5, N)).astype(np.float32)
    y = rng.integers(0, 3, size=N)
    return net, X, y


class StopAfter(pynn.Callback):
    def __init__(self, steps):
        self.steps, self.done = steps, 0

    def on_batch_end(self, net, batch, logs):
        self.done += 1
        if self.done == self.steps:
            net.stop_training = True


def test_ctrl_c_stops_fit_at_a_completed_step(backend, rng, caplog):
    net, X, y = setup(backend, rng)
    timer = threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(1e-3), epochs=10**7, batch_size=BS, seed=9)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 30  # it stopped soon after the signal, not at the end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    assert h.stop_reason == "interrupted" and net.history is h
    assert "fit interrupted" in caplog.text
    at = h.stopped_at
    assert at["epoch"] == len(h) and 0 <= at["batch"] < N_BATCHES
    steps = len(h) * N_BATCHES + at["batch"]
    assert steps > 0
    twin, _, _ = setup(backend, np.random.default_rng(0))
    h2 = twin.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(1e-3), epochs=len(h) + 1, batch_size=BS, seed=9,
                  callbacks=[StopAfter(steps)])
    assert np.array_equal(net._params, twin._params)
    assert h.loss == h2.loss[: len(h)]


def test_fit_in_a_worker_thread_leaves_signals_alone(rng):
    net, X, y = setup("numpy", rng)
    before = signal.getsignal(signal.SIGINT)
    out = {}
    th = threading.Thread(target=lambda: out.update(h=net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1),
                                                             epochs=2, batch_size=BS)))
    th.start()
    th.join()
    assert len(out["h"]) == 2 and out["h"].stop_reason is None
    assert signal.getsignal(signal.SIGINT) is before


SCRIPT = textwrap.dedent("""
    import json, logging, sys
    import numpy as np, pynn

    logging.basicConfig()  # pynn logs through logging; show its warning on stderr

    class Ready(pynn.Callback):
        def on_epoch_end(self, net, epoch, logs):
            if epoch == 0:
                print("ready", flush=True)

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 2000)), rng.integers(0, 3, size=2000)
    net = pynn.Network.from_sizes([5, 64, 3], backend=sys.argv[1], seed=1)
    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.01), epochs=10**7, batch_size=10,
                callbacks=[Ready()])
    print(json.dumps({"reason": h.stop_reason, "epochs": len(h), "finite": bool(np.isfinite(net._params).all())}))
""")


@pytest.mark.parametrize("backend_name", ["cpp", "numpy"])
def test_ctrl_c_in_a_script_returns_cleanly(backend_name, tmp_path):
    """A real SIGINT to a process busy in fit: the script carries on after fit and exits 0."""
    from conftest import backend_module

    backend_module(backend_name)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), backend_name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res == {"reason": "interrupted", "epochs": res["epochs"], "finite": True} and res["epochs"] >= 1
    assert "fit interrupted" in err  # the logging warning
