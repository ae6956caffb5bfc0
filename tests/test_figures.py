from nst_lib.figures import claims, speed_table


def test_the_speed_table_shows_each_time_as_a_multiple_of_the_fastest():
    table = speed_table([("generator", (1, 3, 24, 40), 1, 0.02), ("optimization", (24, 40), 300, 6.0)]).splitlines()
    assert table[0] == "| method | image (px) | iterations | seconds | x fastest |"
    assert table[2] == "| generator | 40 x 24 | 1 | 0.02 | 1 |"
    assert table[3] == "| optimization | 40 x 24 | 300 | 6 | 300 |"


def test_claims_are_stated_with_their_measured_value():
    table = claims([("conv1_1 reconstructs the photograph", "content loss 5e-05", True), ("conv5_1 does", "0.8", False)])
    assert [row["holds"] for row in table.rows] == ["yes", "no"]
    assert "<td>content loss 5e-05</td>" in table._repr_html_()


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
