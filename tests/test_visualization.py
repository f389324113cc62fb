"""The learning curve's validation axis follows the data, so a few points of change are visible."""

import pytest

from modeling_tsgv.visualization import percent_axis_limits, plot_learning_curve


@pytest.mark.parametrize(
    "values,expected",
    [
        ([20.0, 22.0, 21.5], (18.5, 23.5)),  # two points of change fill the axis, not 2 % of it
        ([99.0, 100.0], (95.0, 100.0)),  # slid back inside 0-100
        ([0.5, 1.0], (0.0, 5.0)),
        ([10.0, 80.0], (3.0, 87.0)),
        ([], (0.0, 100.0)),
    ],
)
def test_the_percent_axis_fits_its_values(values, expected):
    assert percent_axis_limits(values) == pytest.approx(expected)


def test_the_plotted_validation_axis_is_scaled_to_the_run(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    limits = []
    original = Axes.set_ylim
    monkeypatch.setattr(Axes, "set_ylim", lambda self, *a, **k: limits.append(a) or original(self, *a, **k))
    history = [
        {"epoch": 1.0, "step": 10, "loss": 1.2},
        {"epoch": 1.0, "step": 10, "eval_R1@0.5": 20.0, "eval_mIoU": 24.0},
        {"epoch": 2.0, "step": 20, "loss": 1.0},
        {"epoch": 2.0, "step": 20, "eval_R1@0.5": 23.0, "eval_mIoU": 25.0},
    ]
    plot_learning_curve(history, tmp_path / "curve.png", baselines={"prior": 21.0})
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert (19.5, 25.5) in limits and (0, 100) not in limits  # 20..25 with margins, not 0..100
