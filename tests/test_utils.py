"""The shared helpers: atomic output directories and batching."""

import pytest

from deepseek_hf.utils import batched, staged_directory


def test_staged_directory_appears_only_when_complete(tmp_path):
    out = tmp_path / "sub" / "result"
    with staged_directory(out) as staging:
        (staging / "a.txt").write_text("a")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "a"
    assert sorted(p.name for p in out.parent.iterdir()) == ["result"]


def test_staged_directory_failure_leaves_nothing(tmp_path):
    out = tmp_path / "result"
    with pytest.raises(RuntimeError):
        with staged_directory(out) as staging:
            (staging / "half.txt").write_text("x")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("if_exists", "expected"), [("replace", "new"), ("keep", "old")])
def test_staged_directory_existing_output(tmp_path, if_exists, expected):
    out = tmp_path / "result"
    out.mkdir()
    (out / "f.txt").write_text("old")
    with staged_directory(out, if_exists=if_exists) as staging:
        (staging / "f.txt").write_text("new")
    assert (out / "f.txt").read_text() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["result"]  # no staging or retired folder left


def test_batched():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []
