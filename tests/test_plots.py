"""band_plot draws the seed mean (arithmetic, or geometric with log=True) and its CI band."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # only in this test process; never set globally (it strips notebook figures)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from modadd.plots import band_plot  # noqa: E402


def test_band_plot_means_and_log_scale():
    frame = pd.DataFrame({"step": [0, 0, 1, 1], "seed": [0, 1, 0, 1],
                          "value": [1.0, 100.0, 2.0, 8.0]})
    fig, (linear, log) = plt.subplots(1, 2)
    band_plot(frame, x="step", ax=linear)
    band_plot(frame, x="step", ax=log, log=True)
    np.testing.assert_allclose(linear.lines[0].get_ydata(), [50.5, 5.0])
    np.testing.assert_allclose(log.lines[0].get_ydata(), [10.0, 4.0])
    assert log.get_yscale() == "log"
    band = log.collections[0].get_paths()[0].vertices[:, 1]
    assert (band > 0).all()
    plt.close(fig)


def test_entropy_panels_one_axis_per_layer():
    import numpy as np
    import pandas as pd
    from modadd.plots import entropy_panels
    rows = [dict(step=s, m=m, metric="entropy", layer=l, value=1.0 + s, seed=seed)
            for s in (0, 10) for m in (1, 2) for l in (0, 1, 2) for seed in (0, 1)]
    fig = entropy_panels(pd.DataFrame(rows), seq_len=8, title="t")
    axes = fig.get_axes()
    assert len(axes) == 3
    assert axes[0].lines[-1].get_ydata()[0] == np.log(8)       # uniform-attention reference


def test_panels_fill_rows_of_two_at_page_width():
    import pytest
    from modadd.plots import MAX_COLUMNS, PAGE_WIDTH, panels
    fig, axes = panels(3, height=2.0, sharey=True)
    assert len(axes) == 3 and len(fig.axes) == 3          # the fourth cell was removed
    assert tuple(fig.get_size_inches()) == (PAGE_WIDTH, 4.0)
    assert [ax.get_subplotspec().colspan.start for ax in axes] == [0, 1, 0]
    plt.close(fig)
    fig, axes = panels(1)
    assert len(axes) == 1 and fig.get_size_inches()[0] == PAGE_WIDTH
    plt.close(fig)
    with pytest.raises(ValueError, match=f"columns: must be in 1..{MAX_COLUMNS}, got 4"):
        panels(4, columns=4)
    with pytest.raises(ValueError, match="n: must be an integer >= 1, got 0"):
        panels(0)


def test_the_book_style_has_no_font_below_the_minimum():
    import matplotlib
    from modadd.plots import DPI, MIN_FONT, book_style
    from matplotlib.font_manager import FontProperties
    book_style()
    sizes = [FontProperties(size=matplotlib.rcParams[key]).get_size_in_points() for key in
             ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
              "ytick.labelsize", "legend.fontsize", "legend.title_fontsize", "figure.titlesize")]
    assert min(sizes) >= MIN_FONT
    assert matplotlib.rcParams["figure.dpi"] == DPI


def test_the_shared_legend_takes_the_empty_cell_or_goes_below():
    from modadd.plots import panels, shared_legend
    for n, inside in ((3, True), (4, False), (1, False)):
        fig, axes = panels(n)
        for i, ax in enumerate(axes):
            ax.plot([0, 1], [0, i], label="a")          # the same label in every panel: once
            ax.plot([0, 1], [1, i], label=f"b{i}")
            ax.legend()
        fig.tight_layout()
        legend = shared_legend(fig, axes)
        assert [t.get_text() for t in legend.get_texts()] == ["a"] + [f"b{i}" for i in range(n)]
        assert all(ax.get_legend() is None for ax in axes)
        x, y = legend.get_bbox_to_anchor().transformed(fig.transFigure.inverted()).p0
        if inside:     # centred in the empty fourth cell: right column, bottom row
            assert x > 0.5 and y < 0.5 and legend._loc == 10
        else:          # below the panels
            assert y == 0.0 and abs(x - 0.5) < 1e-9
        plt.close(fig)


def test_figure_data_embeds_the_frame_as_csv() -> None:
    import base64
    import io
    import re

    import pytest
    from unittest import mock

    from modadd import plots
    frame = pd.DataFrame({"step": [0, 10], "value": [0.5, 1 / 3]})
    shown = []
    with mock.patch("IPython.display.display", shown.append):
        plots.figure_data(frame, "fig-acc", what="one row per step")
    page = shown[0].data
    assert 'download="fig-acc.csv"' in page and "2 rows, one row per step" in page
    data = base64.b64decode(re.search(r'base64,([^"]+)"', page).group(1)).decode()
    assert pd.read_csv(io.StringIO(data)).equals(pd.DataFrame({"step": [0, 10],
                                                               "value": [0.5, 0.333333]}))
    with pytest.raises(ValueError, match="name"):
        plots.figure_data(frame, "../x")
    with pytest.raises(ValueError, match="MAX_DATA_BYTES"):
        plots.figure_data(pd.DataFrame({"x": range(400_000)}), "big")
