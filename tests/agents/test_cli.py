"""`gateway agents …` in-process, on a real store and the fake upstream."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateway.cli import main
from tests.fake_upstream import FakeUpstream


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream, tmp_path: Path) -> None:
    for name, value in {
        "OPENAI_API_KEY": "sk-upstream-secret",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "GATEWAY_DEFAULT_MODEL": "openai/gpt-4o-mini",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.delenv("KIMI_API_KEY", raising=False)


def test_agents_commands(
    cli_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        main(["agents", "create", "ada", "--memory", "human=Ann", "--description", "Helper"]) == 0
    )
    assert "created agent ada" in capsys.readouterr().out
    assert main(["agents", "create", "ada"]) == 1
    assert "already exists" in capsys.readouterr().err

    assert main(["agents", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["NAME", "MODEL", "ID", "DESCRIPTION"]
    assert listing[1].split()[:2] == ["ada", "openai/gpt-4o-mini"]

    assert main(["agents", "show", "ada"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["memory_blocks"] == [{"label": "human", "value": "Ann", "limit": 5000}]

    monkeypatch.setattr("sys.stdin", io.StringIO("hello there\n/exit\n"))
    assert main(["agents", "chat", "ada"]) == 0
    assert "ada> echo: hello there" in capsys.readouterr().out

    assert main(["agents", "delete", "ada"]) == 0
    assert main(["agents", "show", "ada"]) == 1
    assert "does not exist" in capsys.readouterr().err
