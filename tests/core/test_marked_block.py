"""README blocks written by the table tools: only the marked lines change; bad files are kept."""

from __future__ import annotations

import pytest

from morel.core.errors import MorelError
from morel.core.marked_block import check_marked_block, replace_marked_block


def test_only_the_block_between_the_markers_is_replaced(tmp_path):
    readme = tmp_path / "README.md"
    head, tail = "# t\nintro\n<!-- results -->\n", "<!-- /results -->\nafter\n"
    readme.write_text(head + "| old |\n| row |\n" + tail)
    replace_marked_block(readme, "results", "| new |\n")
    assert readme.read_text() == head + "| new |\n" + tail
    replace_marked_block(readme, "results", "| a |\n| b |")  # missing final newline is added
    assert readme.read_text() == head + "| a |\n| b |\n" + tail


@pytest.mark.parametrize("text", [
    "no markers\n",
    "<!-- results -->\nno end marker\n",
    "<!-- /results -->\n<!-- results -->\nend before start\n",
    "<!-- results -->\n<!-- /results -->\n<!-- results -->\n<!-- /results -->\n",
])
def test_a_file_without_exactly_one_block_is_refused_and_kept(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(MorelError, match=r"README.md: needs exactly one '<!-- results -->' line"):
        check_marked_block(readme, "results")
    with pytest.raises(MorelError, match="README.md: needs exactly one"):
        replace_marked_block(readme, "results", "| new |\n")
    assert readme.read_text() == text


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(MorelError, match="nope.md: cannot read"):
        check_marked_block(tmp_path / "nope.md", "results")
