"""``History.plot``: the loss (and accuracy) curves of a real ``fit``, drawn with matplotlib.

The oracle is the History itself: every drawn line carries exactly the recorded series against
epochs 1..n, and the PNG written is a real image of the figure's size.
"""

from __future__ import annotations

import numpy as np
import pytest

import pynn
from conftest import require


@pytest.fixture
def history():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(3, 60)), np.arange(60) % 3
    net = pynn.Network.from_sizes([3, 8, 3], seed=0)
    return net.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(0.05), epochs=6, batch_size=16, seed=0,
                   validation_data=(X[:, :20], y[:20]))


def lines(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}


def test_plot_to_png(tmp_path, history):
    require("matplotlib")
    image = require("matplotlib.image")
    plt = require("matplotlib.pyplot")
    open_figures = plt.get_fignums()
    path = tmp_path / "curves.png"
    fig = history.plot(path)
    assert plt.get_fignums() == open_figures  # drawn without pyplot: no figure left open
    epochs = [1, 2, 3, 4, 5, 6]
    loss_ax, acc_ax = fig.axes
    assert lines(loss_ax) == {"loss": (epochs, history.loss), "val_loss": (epochs, history.val_loss)}
    assert lines(acc_ax) == {"accuracy": (epochs, history.accuracy), "val_accuracy": (epochs, history.val_accuracy)}
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() == "loss"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    w, h = fig.get_size_inches() * 100
    assert pixels.shape[:2] == (round(h), round(w))
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_plot_regression_history_has_one_panel_and_svg(tmp_path):
    require("matplotlib")
    h = pynn.History()
    for epoch, loss in enumerate([3.0, 2.0, 1.5]):
        h.append(epoch, loss=loss)
    fig = h.plot(tmp_path / "loss.svg")
    assert len(fig.axes) == 1 and lines(fig.axes[0]) == {"loss": ([1, 2, 3], [3.0, 2.0, 1.5])}
    assert (tmp_path / "loss.svg").read_text().lstrip().startswith("<?xml")


def test_plot_on_given_axes(history):
    require("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert history.plot(ax=ax) is fig
    assert set(lines(ax)) == {"loss", "val_loss"} and len(fig.axes) == 1


def test_plot_empty_history():
    with pytest.raises(ValueError, match="the history is empty"):
        pynn.History().plot()
