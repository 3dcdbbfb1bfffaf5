"""The shared helpers: atomic output directories, batching, and the command-line parser (one flag spelling)."""

import dataclasses

import pytest

from deepseek_hf.utils import ArgumentParser, batched, entries_from_config, staged_directory


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


def _parser():
    parser = ArgumentParser(prog="demo")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--output-dir")
    run.add_argument("--text_key", default="text")  # declared with an underscore: the dash form works too
    run.add_argument("--max-new-tokens", type=int)
    run.add_argument("values", nargs="*")
    return parser, run


def test_argument_parser_accepts_both_separators():
    parser, _ = _parser()
    args = parser.parse_args(["run", "--output_dir", "o", "--text-key", "t", "--max_new_tokens=3", "--max_new", "4"])
    assert (args.output_dir, args.text_key, args.max_new_tokens) == ("o", "t", 4)  # abbreviations still work
    args = parser.parse_args(["run", "--output-dir=o", "--", "--output_dir"])  # after `--`: positional, as is
    assert args.output_dir == "o" and args.values == ["--output_dir"]


def test_argument_parser_help_shows_the_declared_spelling(capsys):
    parser, run = _parser()
    help_text = run.format_help()
    assert "--output-dir" in help_text and "--output_dir" not in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--no_such-flag"])
    assert "unrecognized arguments: --no_such-flag" in capsys.readouterr().err


@dataclasses.dataclass
class _Entry:
    path: str
    share: float = 0.5


def test_entries_from_config_takes_mappings_json_and_instances_and_names_the_option_in_errors():
    given = _Entry("c")
    got = entries_from_config(
        [{"path": "a"}, '{"path": "b", "share": 0.25}', given], _Entry, option="srcs", required=("path",)
    )
    assert got == [_Entry("a"), _Entry("b", 0.25), given] and got[2] is given
    assert entries_from_config(None, _Entry, option="srcs", required=("path",)) == []
    for item, message in [
        ("{path: a}", "an entry of `srcs` is not a JSON object"),
        (3, "an entry of `srcs` must be a mapping with path"),
        ({"path": "a", "shar": 1}, "unknown srcs key 'shar'; did you mean 'share'"),
        ({"share": 0.1}, "an entry of `srcs` has no 'path'"),
    ]:
        with pytest.raises(ValueError, match=message):
            entries_from_config([item], _Entry, option="srcs", required=("path",))
