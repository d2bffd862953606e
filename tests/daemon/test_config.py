"""The daemon config: unknown keys and wrong types are errors that say where; flags override."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from eegpi.daemon.app import build_config
from eegpi.daemon.config import AppConfig, load_config, split_hostport
from eegpi.exc import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "eegpi.yaml"
    p.write_text(text)
    return p


def test_full_config_loads(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            """
device:
  backend: pi
  spi_bus: 1
  drdy_pin: 25
  reset_pin: 22
pipelines_dir: /srv/pipelines
autostart: [default]
grpc: {listen: "0.0.0.0:50051", token: s3cret}
websocket: {listen: "0.0.0.0:9001", allowed_origins: ["http://pi.local:9001"]}
""",
        )
    )
    assert cfg.device.backend == "pi" and cfg.device.spi_bus == 1 and cfg.device.reset_pin == 22
    assert cfg.autostart == ("default",)
    assert cfg.grpc.token == "s3cret" and cfg.resolved_token() == "s3cret"
    assert cfg.websocket.allowed_origins == ("http://pi.local:9001",)


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")) == AppConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("devise: {}\n", "unknown key(s) devise in config"),
        ("device: {spi_buss: 0}\n", "unknown key(s) spi_buss in device"),
        ("device: {backend: usb}\n", "device.backend: 'usb' is not one of auto, pi, mock"),
        ("device: {spi_bus: zero}\n", "device.spi_bus: expected an integer"),
        ("grpc: {insecure: maybe}\n", "grpc.insecure: expected true or false"),
        ("autostart: 5\n", "autostart: expected a list"),
        ("grpc: [1]\n", "grpc: expected a mapping"),
        ("device: {backend: [\n", "invalid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("abc\n")
    cfg = load_config(_write(tmp_path, f"grpc: {{token_file: {tmp_path / 'token'}}}\n"))
    assert cfg.resolved_token() == "abc"
    cfg = load_config(_write(tmp_path, f"grpc: {{token_file: {tmp_path / 'missing'}}}\n"))
    with pytest.raises(ConfigError, match=r"grpc\.token_file"):
        cfg.resolved_token()
    (tmp_path / "empty").write_text("\n")
    cfg = load_config(_write(tmp_path, f"grpc: {{token_file: {tmp_path / 'empty'}}}\n"))
    with pytest.raises(ConfigError, match=r"grpc\.token_file: .* is empty"):
        cfg.resolved_token()


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "device: {backend: pi}\nautostart: [a]\n")
    args = argparse.Namespace(
        config=str(path),
        mock=True,
        grpc="127.0.0.1:6000",
        ws=None,
        pipelines="/p",
        autostart=["b"],
        verbose=0,
    )
    cfg = build_config(args)
    assert cfg.device.backend == "mock"
    assert cfg.grpc.listen == "127.0.0.1:6000" and cfg.websocket.listen == "127.0.0.1:9001"
    assert cfg.pipelines_dir == "/p" and cfg.autostart == ("b",)


@pytest.mark.parametrize("bad", ["9001", ":9001", "host:port", "h:70000"])
def test_bad_hostport(bad: str) -> None:
    with pytest.raises(ConfigError):
        split_hostport(bad, "--ws")


def test_hostport_ipv6() -> None:
    assert split_hostport("[::1]:9001", "--ws") == ("::1", 9001)


def test_shipped_example_config_loads() -> None:
    from tests.conftest import REPO

    cfg = load_config(REPO / "systemd" / "eegpi.yaml")
    assert cfg.device.drdy_pin == 26 and cfg.device.acquisition == "process"
    assert cfg.device.board == "pieeg" and cfg.device.board_pins() == {"drdy": 26}
    assert cfg.grpc.listen == "0.0.0.0:50051" and cfg.grpc.token_file
    assert cfg.autostart == ("default",)


# -- YAML as documented, and hostile config files ----------------------------------------------


@pytest.mark.parametrize(("word", "value"), [("true", True), ("True", True), ("FALSE", False)])
def test_bool_keys_take_yaml12_booleans(tmp_path: Path, word: str, value: bool) -> None:
    emulator = f"{{realtime: {word}, bias_off: {word}, strict: {word}, stamp_index: {word}}}"
    text = f"grpc: {{insecure: {word}}}\ndevice: {{emulator: {emulator}}}\n"
    cfg = load_config(_write(tmp_path, text))
    emu = cfg.device.emulator
    assert cfg.grpc.insecure is value and emu.realtime is value and emu.bias_off is value
    assert emu.strict is value and emu.stamp_index is value


@pytest.mark.parametrize("word", ["yes", "on", "off", "no", "Y"])
def test_yaml11_booleans_are_not_booleans(tmp_path: Path, word: str) -> None:
    path = _write(tmp_path, f"grpc: {{insecure: {word}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"grpc.insecure: expected true or false, got '{word}'" in str(info.value)


def test_emulator_input_off_in_config(tmp_path: Path) -> None:
    """String-valued keys take the words YAML 1.1 would have turned into booleans."""
    cfg = load_config(_write(tmp_path, "log_level: off\nautostart: [on, yes]\n"))
    assert cfg.log_level == "off" and cfg.autostart == ("on", "yes")


def test_duplicate_key_in_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "grpc:\n  token: a\n  listen: 127.0.0.1:1\n  token: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:4: key 'token' appears twice (first on line 2)"


def test_hostile_config_is_refused_short(tmp_path: Path) -> None:
    laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, 9):
        laughs += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]\n"
    path = _write(tmp_path, laughs + "grpc: *a8\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:") and len(str(info.value)) < 300
    path.write_text("log_level: " + "x" * (2 * 2**20) + "\n")
    with pytest.raises(ConfigError, match="too large for a config file"):
        load_config(path)


def test_long_values_are_quoted_short(tmp_path: Path) -> None:
    path = _write(tmp_path, "device: {spi_bus: " + "z" * 100_000 + "}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "device.spi_bus: expected an integer" in str(info.value)
    assert len(str(info.value)) < 500
