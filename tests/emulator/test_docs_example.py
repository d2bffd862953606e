"""docs/emulator.md's worked example runs as written: the driver, its pytest file (through the
installed ``eegpi_board`` plugin, in a real pytest subprocess) and the plain-Python use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def _named(name: str) -> str:
    (block,) = [b for b in _blocks() if b.startswith(f"# {name}\n")]
    return block


def test_the_example_test_file_passes_under_pytest(tmp_path: Path) -> None:
    (tmp_path / "my_ads1299.py").write_text(_named("my_ads1299.py"))
    (tmp_path / "test_my_ads1299.py").write_text(_named("test_my_ads1299.py"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_ads1299.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_the_example_without_pytest_runs(tmp_path: Path) -> None:
    (tmp_path / "my_ads1299.py").write_text(_named("my_ads1299.py"))
    (plain,) = [b for b in _blocks() if b.startswith("from eegpi") and "import my_ads1299" in b]
    done = subprocess.run(
        [sys.executable, "-c", plain],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[192, 0, 0] 1")
