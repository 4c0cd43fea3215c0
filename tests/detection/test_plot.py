import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from toyalgos.detection import class_legend, draw_boxes, draw_grid, make_shapes, show_image  # noqa: E402


def _g(seed):
    return torch.Generator().manual_seed(seed)


def test_draw_boxes_one_rectangle_per_box_at_the_right_place():
    s = make_shapes(1, n_objects=(3, 3), generator=_g(0))
    fig, ax = plt.subplots()
    show_image(ax, s.images[0], title="x")
    draw_boxes(ax, s.boxes[0], s.labels[0], scores=torch.tensor([0.9, 0.5, 0.1]))
    draw_grid(ax, 8, s.image_size)
    class_legend(ax)
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(rects) == 3 and len(ax.texts) == 3 and len(ax.lines) == 2 * 7
    for rect, box in zip(rects, s.boxes[0].tolist(), strict=True):
        x1, y1, x2, y2 = box
        assert rect.get_xy() == pytest.approx((x1, y1)) and rect.get_width() == pytest.approx(x2 - x1)
        assert rect.get_height() == pytest.approx(y2 - y1)
    assert ax.get_legend() is not None
    plt.close(fig)


def test_show_image_rejects_other_shapes():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"image must have shape \(3, H, W\)"):
        show_image(ax, torch.zeros(64, 64))
    plt.close(fig)
