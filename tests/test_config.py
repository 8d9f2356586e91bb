"""Settings: YAML with located errors, environment overrides, and hostile YAML that must not crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmind.config import load_settings
from opsmind.core import ConfigError


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "opsmind.yaml"
    path.write_text("tenant: acme\napi:\n  port: 8080\nengine:\n  scrape_interval_s: -3\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:5: engine.scrape_interval_s:"), msg
    assert "\n" not in msg


def test_unknown_field_and_bad_yaml_are_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^<config>:3: services\[0\]\.metricz: Extra inputs"):
        load_settings(text="services:\n  - name: a\n    metricz: {}\n")
    with pytest.raises(ConfigError, match=r"^<config>:3: invalid YAML"):
        load_settings(text="tenant: a\napi: [1\n")


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSMIND_API__PORT", "9123")
    s = load_settings(text="api:\n  port: 8080\n  host: 0.0.0.0\n")
    assert (s.api.port, s.api.host) == (9123, "0.0.0.0")


@pytest.mark.parametrize("text", ["[" * 100_000, "{" * 100_000, "a: " + "[" * 5000 + "]" * 5000])
def test_deeply_nested_yaml_is_an_error_not_a_crash(text: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid YAML|nested"):
        load_settings(text=text)
