"""`eegpi validate FILE...` checks pipeline files locally and names what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.cli_runner import REPO, run_eegpi

DEFAULT = str(REPO / "pipelines" / "default.yaml")

BAD = """\
name: bad
stages:
  - name: acquire
    type: ads1299_source
  - name: fft
    type: no_such_stage
    inputs: [acquire]
"""


def test_shipped_default_is_ok() -> None:
    r = run_eegpi("validate", DEFAULT)
    assert r.code == 0, r.err
    assert r.out == f"{DEFAULT}: ok (6 stages, topics: eeg_voltage, eeg_filtered)\n"


def test_errors_name_file_and_stage_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    missing = tmp_path / "missing.yaml"
    r = run_eegpi("validate", DEFAULT, str(bad), str(missing))
    assert r.code == 1
    assert r.out.startswith(f"{DEFAULT}: ok")
    errors = r.err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(str(bad)) and "fft" in errors[0] and "no_such_stage" in errors[0]
    assert errors[1].startswith(str(missing))
    assert "Traceback" not in r.err


def test_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    r = run_eegpi("validate", "--json", DEFAULT, str(bad))
    assert r.code == 1
    ok, failed = json.loads(r.out)
    assert ok == {
        "file": DEFAULT,
        "ok": True,
        "name": "default",
        "stages": 6,
        "topics": ["eeg_voltage", "eeg_filtered"],
    }
    assert failed["ok"] is False and "no_such_stage" in failed["error"]


def test_documented_values_and_hostile_files(tmp_path: Path) -> None:
    """`input: off` validates; a duplicate key and a billion-laughs file get one short line."""
    text = (REPO / "pipelines" / "default.yaml").read_text()
    assert "input: normal" in text
    off = tmp_path / "off.yaml"
    off.write_text(text.replace("input: normal", "input: off"))
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: dup\nname: again\nstages: []\n")
    laughs = tmp_path / "laughs.yaml"
    lists = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lists += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    laughs.write_text(f"stages: []\ndescription: [{', '.join(lists)}]\nname: *l8\n")
    r = run_eegpi("validate", str(off), str(dup), str(laughs))
    assert r.code == 1
    assert r.out == f"{off}: ok (6 stages, topics: eeg_voltage, eeg_filtered)\n"
    errors = r.err.splitlines()
    assert errors[0] == f"{dup}:2: key 'name' appears twice (first on line 1)"
    assert errors[1].startswith(f"{laughs}:") and "more than" in errors[1]
    assert len(errors) == 2 and len(r.err) < 500
