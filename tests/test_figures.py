import pytest

from nst_lib.claims import below, judge
from nst_lib.figures import claims, speed_table


def test_the_speed_table_shows_each_time_as_a_multiple_of_the_fastest():
    table = speed_table([("generator", (1, 3, 24, 40), 1, 0.02), ("optimization", (24, 40), 300, 6.0)]).splitlines()
    assert table[0] == "| method | image (px) | iterations | seconds | x fastest |"
    assert table[2] == "| generator | 40 x 24 | 1 | 0.02 | 1 |"
    assert table[3] == "| optimization | 40 x 24 | 300 | 6 | 300 |"


def test_claims_are_stated_with_their_measured_value_verdict_and_reason():
    table = claims([
        judge("conv1_1 reconstructs the photograph", below(5e-5, 1e-3), "content loss 5e-05", otherwise="-"),
        judge("conv5_1 does", below(0.8, 0.5), "0.8", otherwise="its features keep only what is where"),
    ])
    assert [claim.verdict for claim in table.claims] == ["holds", "does not hold"]
    html = table._repr_mimebundle_()[0]["text/html"]
    assert "<td data-label='measured'>content loss 5e-05</td>" in html
    assert "its features keep only what is where; it misses by 60%" in html


def test_the_title_clears_the_captions_of_tiles_taller_than_the_first():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nst_lib.figures import grid

    wide, square = torch.rand(1, 3, 60, 96), torch.rand(1, 3, 96, 96)
    labels = ["style"] + [f"G(noise), noise seed {seed}\nstyle weight 10000,\nstyle loss 0.19\none pass: 0.04 s"
                          for seed in range(4)]
    figure = grid([wide] + [square] * 4, labels, title="Texture generator after 40 steps: one sample per noise seed")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    title = figure._suptitle.get_window_extent(renderer)
    captions = [axis.title.get_window_extent(renderer) for axis in figure.axes]
    plt.close(figure)
    assert all(title.y0 >= caption.y1 - 2 for caption in captions)  # text boxes may touch, not overlap


def test_tradeoff_curves_draw_one_labelled_line_per_recipe_on_log_axes():
    from nst_lib.figures import tradeoff_curves

    figure = tradeoff_curves({"a": [(0.9, 0.08, "1e4"), (0.2, 0.25, "1e3")], "b": [(0.95, 0.09, "1e4")]}, title="t")
    axis = figure.axes[0]
    assert [line.get_label() for line in axis.get_lines()] == ["a", "b"]
    assert list(axis.get_lines()[0].get_xdata()) == [0.2, 0.9]  # in order of content error
    assert axis.get_xscale() == axis.get_yscale() == "log"
    assert sorted(text.get_text() for text in axis.texts) == ["1e3", "1e4", "1e4"]


def test_equivalence_curves_mark_several_generators_on_one_photo():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nst_lib.figures import equivalence_curves

    figure = equivalence_curves({"kodim23": [9.0, 5.0, 3.0, 2.0]}, {"kodim23": {"shipped": 2.5, "trained here": 4.0}})
    axis = figure.axes[0]
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    dots = [line.get_xydata().tolist() for line in axis.lines if line.get_marker() == "o"]
    plt.close(figure)
    assert legend == ["kodim23", "kodim23: shipped", "kodim23: trained here"]
    assert dots == [[[4.0, 2.5]], [[3.0, 4.0]]]  # where the best total so far first reaches each level


def test_loss_curves_place_averaged_histories_at_their_steps():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nst_lib.figures import loss_curves

    figure = loss_curves({"each step": {"style": [4.0, 3.0, 2.0]}, "means of 10": {"style": [3.0, 1.0]}},
                         terms=("style",), every={"means of 10": 10})
    lines = {line.get_label(): line.get_xdata().tolist() for line in figure.axes[0].lines}
    plt.close(figure)
    assert lines == {"each step": [1, 2, 3], "means of 10": [10, 20]}



# File names are free text: matplotlib would read "$...$" in them as mathtext, and fail on some.
ODD_NAMES = ["a$\\foo{$b.png", "cost $5 and $10.png"]


def drawn_as_they_are(figure) -> set[str]:
    """The texts of ``figure`` that hold a dollar sign, as drawn, after checking that none is drawn as mathtext
    (the log axes' tick labels, which matplotlib writes in mathtext itself, left aside)."""
    from matplotlib.text import Text

    figure.canvas.draw()  # a mathtext parse error would be raised here
    texts = [text.get_text() for text in figure.findobj(Text)]
    shown = [Text()._preprocess_math(text) for text in texts if "$" in text and "\\mathdefault" not in text]
    assert not [text for text, math in shown if math], shown
    return {text for text, _ in shown}


def test_dollar_signs_in_labels_are_drawn_as_they_are():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nst_lib.figures import contact_sheet, grid, loss_curves

    tile = torch.rand(1, 3, 16, 16)
    sheet = contact_sheet([[tile, None]], [f"content {ODD_NAMES[0]}"], ODD_NAMES, [[ODD_NAMES[1], "failed"]],
                          title=ODD_NAMES[1])
    assert drawn_as_they_are(sheet) == {f"content {ODD_NAMES[0]}", *ODD_NAMES}
    tiles = grid([tile, tile], ODD_NAMES, title=ODD_NAMES[0])
    assert drawn_as_they_are(tiles) == set(ODD_NAMES)
    curves = loss_curves({name: {"content": [3.0, 2.0, 1.0]} for name in ODD_NAMES}, title=ODD_NAMES[1])
    assert drawn_as_they_are(curves) == set(ODD_NAMES)
    for figure in (sheet, tiles, curves):
        plt.close(figure)


def test_a_portrait_among_landscapes_leaves_no_white_gap_around_it():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nst_lib.figures import MAX_ROW_SCALE, grid

    landscape, portrait = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 64, 50)
    images = [landscape, portrait, landscape, landscape, landscape, landscape]
    figure = grid(images, [f"tile {i}\nsecond line" for i in range(6)], title="mixed", columns=3)
    figure.canvas.draw()
    boxes = [axis.get_window_extent() for axis in figure.axes]
    plt.close(figure)
    for box, image in zip(boxes, images):  # each tile's box has its picture's shape: nothing left blank in it
        assert box.height / box.width == pytest.approx(image.shape[-2] / image.shape[-1], rel=0.03)
    rows = [boxes[:3], boxes[3:]]
    for row in rows:  # one height per row, side by side, a small gap apart
        assert max(box.height for box in row) - min(box.height for box in row) < 1
        for left, right in zip(row, row[1:]):
            assert 0 < right.x0 - left.x1 < 0.2 * left.width
    # The row with the portrait is drawn taller so that both rows end at the same edge: no white gap after it.
    assert rows[0][-1].x1 == pytest.approx(rows[1][-1].x1, abs=1) and rows[0][0].x0 == pytest.approx(rows[1][0].x0)
    assert rows[1][0].height < rows[0][0].height <= rows[1][0].height * MAX_ROW_SCALE


def test_a_grid_redraws_itself_for_a_narrow_screen_in_two_columns_with_larger_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nst_lib.figures import LABEL_POINTS, grid

    figure = grid([torch.rand(1, 3, 64, 64)] * 5, [f"tile {i}" for i in range(5)], columns=5)
    narrow = figure.narrow()
    columns = {round(axis.get_position().x0, 3) for axis in narrow.axes}
    sizes = {axis.title.get_fontsize() for axis in narrow.axes}
    assert len(columns) == 2 and len(narrow.axes) == 5 and min(sizes) > LABEL_POINTS
    assert narrow.get_figwidth() < figure.get_figwidth()
    plt.close(figure)
    plt.close(narrow)


def test_a_missing_picture_is_grey_where_captioned_and_blank_where_not():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nst_lib.figures import contact_sheet

    picture = torch.rand(1, 3, 32, 48)
    figure = contact_sheet([[None, picture], [picture, None]], ["a", "b"], ["x", "y"], [["", "c"], ["c", "failed"]])
    blank, grey = figure.axes[0], figure.axes[3]
    plt.close(figure)
    assert blank.get_facecolor()[3] == 0 and not any(spine.get_visible() for spine in blank.spines.values())
    assert grey.get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("#eeeeee"))
    assert all(spine.get_visible() for spine in grey.spines.values())
