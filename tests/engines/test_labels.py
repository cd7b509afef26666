"""Label CSVs: both layouts, validation with line numbers, writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectd.engines.labels import LabelError, LabelTable, read_labels, write_labels

SHAPE = (4, 5)


def write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_new_layout_any_column_order(tmp_path: Path) -> None:
    path = write(tmp_path, "ImageId,EncodedPixels,ClassId\na.jpg,1 3,2\nb.jpg,,1\n")
    table = read_labels(path, shape=SHAPE)
    assert table.layout == "new"
    assert table.rle("a.jpg", 2) == "1 3"
    assert table.classes("a.jpg") == (2,)
    assert table.image_ids == ["a.jpg", "b.jpg"]  # an empty row still names the image
    assert table.classes("b.jpg") == ()
    assert table.lines[("a.jpg", 2)] == 2


def test_old_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path, "ImageId_ClassId,EncodedPixels\nx_1.jpg_1,2 2\nx_1.jpg_2,\nx_1.jpg_3,nan\n"
    )
    table = read_labels(path, shape=SHAPE)
    assert table.layout == "old"
    assert table.classes("x_1.jpg") == (1,)


def test_bad_rows_are_all_reported_with_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ImageId,ClassId,EncodedPixels\n"
        "a.jpg,5,1 1\n"  # line 2: class out of range
        "a.jpg,x,1 1\n"  # line 3: class not an integer
        ",1,1 1\n"  # line 4: no image id
        "a.jpg,1,1 2 3\n"  # line 5: odd RLE
        "b.jpg,1,1 1\n"
        "b.jpg,1,3 1\n",  # line 7: duplicate of line 6
    )
    with pytest.raises(LabelError) as info:
        read_labels(path, shape=SHAPE)
    problems = info.value.problems
    assert [p.split(":")[1] for p in problems] == ["2", "3", "4", "5", "7"]
    assert "class 5 is not in 1..4" in problems[0]
    assert "'x' is not an integer" in problems[1]
    assert "no image id" in problems[2]
    assert "odd number of values" in problems[3]
    assert "repeats the row at line 6" in problems[4]


def test_rle_leaving_the_image_is_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, "ImageId,ClassId,EncodedPixels\na.jpg,1,19 5\n")
    with pytest.raises(LabelError, match=r":2: a.jpg class 1: token 1: .*past the last pixel 20"):
        read_labels(path, shape=SHAPE)


def test_unknown_header(tmp_path: Path) -> None:
    path = write(tmp_path, "image,mask\na,1 1\n")
    with pytest.raises(LabelError, match="neither"):
        read_labels(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_labels(tmp_path / "nope.csv")


@pytest.mark.parametrize("layout", ["new", "old"])
def test_write_then_read_back(tmp_path: Path, layout: str) -> None:
    table = LabelTable()
    table.set("a.jpg", 3, "1 4")
    table.set("b.jpg", 1, "")
    path = tmp_path / "out.csv"
    rows = write_labels(path, table, layout=layout)  # type: ignore[arg-type]
    assert rows == (1 if layout == "new" else 8)
    back = read_labels(path, shape=SHAPE)
    assert back.rle("a.jpg", 3) == "1 4"
    assert back.classes("b.jpg") == ()


def test_set_rejects_bad_class() -> None:
    with pytest.raises(ValueError, match=r"not in 1\.\.4"):
        LabelTable().set("a.jpg", 0, "")
