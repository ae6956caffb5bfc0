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
