"""The gradebook grid renderer (pure)."""

from lti_tool.grades.charts import DEFAULT_LEVELS
from lti_tool.grades.gradebook_table import Cell, badge_html, grid


def test_rows_escape_names_and_codes_and_link_every_cell():
    table = grid([(1, "<script>alert(1)</script>"), (2, "Liam O'Connor")],
                 [(10, "R.1"), (11, '<b>"x"</b>')],
                 {(1, 10): Cell(3.53, False), (2, 11): Cell(1.0, True)},
                 DEFAULT_LEVELS, detail_url="/course/students/{student}/standards/{standard}",
                 token="tok")
    html = table.rows
    assert table.counts[10]["Mastery"] == 1 and table.counts[10][None] == 1
    assert table.counts[11]["Below Mastery"] == 1
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<b>"x"</b>' not in html
    assert html.count("<td>") == 4 and html.count('href="/course/students/') == 4
    assert 'href="/course/students/1/standards/10?t=tok"' in html
    assert "Mastery <span class=\"value\">3.53</span>" in html
    assert "No evidence" in html and "Set by a teacher" in html
    assert "O&#39;Connor" in html


def test_badges():
    assert "No evidence" in badge_html(None, None)
    assert "Not yet at a level" in badge_html(None, 0.5)
    assert 'class="level level-solid lvl-4"' in badge_html(DEFAULT_LEVELS[0], 4.0)
