import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from toyalgos.core import image_grid, plot_losses, scatter2d, show_source, smooth, subplots  # noqa: E402
from toyalgos.diffusion import q_sample  # noqa: E402


def test_show_source_is_the_real_source():
    src = show_source(q_sample)
    assert str(src).startswith("def q_sample(")
    assert "alphas_cumprod" in str(src)
    md = src._repr_markdown_()
    assert "```python" in md and "toyalgos/diffusion/schedules.py" in md
    assert repr(src).startswith("# toyalgos/diffusion/schedules.py:")


def test_show_source_of_a_decorated_function_names_its_own_file():
    from toyalgos.detection import decode

    src = show_source(decode)
    assert src.location.endswith("detection/yolo.py") and src.text.lstrip().startswith("@torch.no_grad()")
    assert "def decode(" in src.text


def test_show_source_rejects_non_code():
    with pytest.raises(TypeError, match="show_source"):
        show_source(3)


def test_smooth_is_a_trailing_mean():
    v = np.arange(6.0)
    np.testing.assert_allclose(smooth(v, 3), [0, 0.5, 1, 2, 3, 4])
    np.testing.assert_array_equal(smooth(v, 1), v)


def test_plot_helpers_draw_and_check_shapes():
    fig, axes = subplots(3)
    assert axes.shape == (3,)
    scatter2d(axes[0], torch.randn(10, 2), title="x")
    plot_losses({"a": np.ones(10), "b": np.ones(10)}, ax=axes[1])
    image_grid(torch.rand(12, 8, 8), axes[2], ncols=5)
    assert len(axes[1].lines) == 2
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        scatter2d(axes[0], torch.randn(10, 3))
    with pytest.raises(ValueError, match=r"\(n, h, w\)"):
        image_grid(torch.rand(12, 64), axes[2])
    matplotlib.pyplot.close(fig)
