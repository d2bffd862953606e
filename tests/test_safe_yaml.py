"""The YAML reader every eegpi file goes through: YAML 1.2 booleans, limits, short errors."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from eegpi import safe_yaml
from eegpi.exc import ConfigError
from eegpi.safe_yaml import (
    MAX_DEPTH,
    MAX_ERROR_CHARS,
    MAX_FILE_BYTES,
    MAX_NODES,
    clip_message,
    load_yaml_file,
    short_repr,
)

LOADERS = [safe_yaml._PyLoader]
if yaml.__with_libyaml__:
    LOADERS.append(safe_yaml._CLoader)


@pytest.fixture(params=LOADERS, ids=lambda c: c.__name__)
def load(request: pytest.FixtureRequest) -> Any:
    """Both parsers (libyaml and pure Python) must behave the same."""
    return lambda text: safe_yaml._load(request.param, text, "f.yaml")


def _error(load: Any, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(text)
    return str(info.value)


def test_the_libyaml_parser_is_used_when_present() -> None:
    if yaml.__with_libyaml__:
        assert safe_yaml._Loader is safe_yaml._CLoader


@pytest.mark.parametrize(
    "word", ["on", "On", "ON", "off", "Off", "OFF", "yes", "Yes", "YES", "no", "No", "NO", "y", "n"]
)
def test_yaml11_booleans_stay_strings(load: Any, word: str) -> None:
    assert load(f"v: {word}\n") == {"v": word}
    assert load(f"[{word}]") == [word]


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
    ],
)
def test_yaml12_booleans(load: Any, word: str, value: bool) -> None:
    assert load(f"v: {word}\n")["v"] is value


def test_other_scalars_as_before(load: Any) -> None:
    text = "i: 12\nx: 0x1f\nf: 1.5\ne: .inf\nz: ~\nn: null\ns: 'on'\nq: \"true\"\nt: tRuE\n"
    assert load(text) == {
        "i": 12,
        "x": 31,
        "f": 1.5,
        "e": float("inf"),
        "z": None,
        "n": None,
        "s": "on",
        "q": "true",
        "t": "tRuE",
    }


def test_merge_keys_still_work(load: Any) -> None:
    doc = load("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")
    assert doc["d"] == {"x": 3, "y": 2}


def test_duplicate_key_names_line_of_both(load: Any) -> None:
    msg = _error(load, "a: 1\nb:\n  c: 1\n  c: 2\n")
    assert msg == "f.yaml:4: key 'c' appears twice (first on line 3)"


def test_keys_that_become_equal_are_duplicates(load: Any) -> None:
    assert "appears twice" in _error(load, "{1: a, 0x1: b}")
    assert "appears twice" in _error(load, "{x: a, 'x': b}")
    assert load("{1: a, '1': b}") == {1: "a", "1": "b"}


def test_syntax_error_names_line_and_column(load: Any) -> None:
    msg = _error(load, "a: 1\nb: [1, 2\n")
    assert msg.startswith("f.yaml:3: invalid YAML: ") and "column" in msg


def test_second_document_is_refused(load: Any) -> None:
    assert _error(load, "a: 1\n---\nb: 2\n").startswith("f.yaml:2: invalid YAML: expected a single")


def test_unsafe_tags_are_refused(load: Any) -> None:
    assert "could not determine a constructor" in _error(
        load, "a: !!python/object/apply:os.getpid []"
    )


def test_node_limit(load: Any) -> None:
    assert len(load("[" + "1," * (MAX_NODES - 2) + "1]")) == MAX_NODES - 1
    msg = _error(load, "[" + "1," * (MAX_NODES - 1) + "1]")
    assert msg == f"f.yaml:1: more than {MAX_NODES} values (aliases count as what they repeat)"


def test_aliases_count_as_what_they_repeat(load: Any) -> None:
    def text(repeats: int) -> str:  # a: 1,000 nodes, then ``repeats`` aliases of it
        return "a: &a [" + ", ".join(["x"] * 999) + "]\nb: [" + ", ".join(["*a"] * repeats) + "]\n"

    assert len(load(text(48))["b"]) == 48  # 49,004 nodes
    assert _error(load, text(50)).startswith("f.yaml:2: more than")  # 51,004 nodes


def _laughs(levels: int) -> str:
    text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return text


def test_billion_laughs_refused_in_little_memory(load: Any) -> None:
    text = _laughs(10)  # 9**10 = 3.5 billion strings if expanded
    assert len(text) < 700
    tracemalloc.start()
    try:
        msg = _error(load, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than" in msg and len(msg) < 200
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_recursive_alias(load: Any) -> None:
    assert "refers to a node that contains it" in _error(load, "a: &a {b: *a}\n")


def test_undefined_alias(load: Any) -> None:
    assert "undefined alias" in _error(load, "a: *nope\n")


def test_depth_limit(load: Any) -> None:
    assert load("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None
    msg = _error(load, "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert msg == f"f.yaml:1: nested more than {MAX_DEPTH} levels deep"
    msg = _error(load, "{a: " * 5000 + "}" * 5000)
    assert "nested more than" in msg


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (MAX_FILE_BYTES - 3) + b"\n")
    assert load_yaml_file(path) is None
    path.write_bytes(b"# " + b"x" * (10 * MAX_FILE_BYTES) + b"\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_file(path, "pipeline file")
    assert str(info.value) == f"{path}: 10 MiB is too large for a pipeline file (at most 1 MiB)"


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_yaml_file(tmp_path / "nope.yaml", "config file")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_yaml_file(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml_file(bad)


def test_short_repr_is_bounded() -> None:
    assert short_repr("abc") == "'abc'"
    assert len(short_repr("x" * 10**6)) <= 200
    shared: list[Any] = ["lol"] * 9
    for _ in range(12):
        shared = [shared] * 9  # 9**13 leaves: repr() would never finish
    assert len(short_repr(shared)) <= 200


def test_clip_message_keeps_both_ends() -> None:
    text = "file.yaml: " + "x" * 10_000 + " is not one of a, b"
    clipped = clip_message(text)
    assert len(clipped) <= MAX_ERROR_CHARS
    assert clipped.startswith("file.yaml: ") and clipped.endswith("is not one of a, b")
    assert clip_message("short") == "short"
