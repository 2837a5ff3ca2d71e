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
