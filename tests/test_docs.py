"""The documents a user gets with a clone: every setting documented, no dangling links."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import McpServerConfig, ModelGroupConfig, ProviderConfig, Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = (ROOT / "config/gateway.toml").read_text()
# Settings that are tables of the file rather than keys of [gateway].
TABLES = {
    "providers": "[[providers]]",
    "mcp_servers": "[[mcp_servers]]",
    "aliases": "[aliases]",
    "prices": "[prices.",
    "models": "[models.",
}
# Secrets belong in the environment: the file names their variable instead.
SECRETS = {"api_keys": "GATEWAY_API_KEYS", "admin_key": "GATEWAY_ADMIN_KEY"}


def _documented(key: str) -> bool:
    return re.search(rf"^#\s*{re.escape(key)}\s*=", CONFIG, re.MULTILINE) is not None


def test_the_config_file_documents_every_setting() -> None:
    missing = []
    for name in Settings.model_fields:
        if name in TABLES:
            ok = TABLES[name] in CONFIG
        elif name in SECRETS:
            ok = SECRETS[name] in CONFIG
        else:
            ok = _documented(name)
        if not ok:
            missing.append(name)
    assert not missing, f"config/gateway.toml does not document {missing}"


def test_the_config_file_documents_every_field_of_its_tables() -> None:
    fields = [
        *ProviderConfig.model_fields,
        *McpServerConfig.model_fields,
        *ModelGroupConfig.model_fields,
    ]
    missing = [name for name in fields if not _documented(name)]
    assert not missing, f"config/gateway.toml does not document {missing}"


def test_every_environment_setting_is_in_the_api_reference() -> None:
    api = (ROOT / "docs/api.md").read_text()
    missing = [
        f"GATEWAY_{name.upper()}"
        for name in Settings.model_fields
        if name not in TABLES and f"GATEWAY_{name.upper()}" not in api
    ]
    assert not missing, f"docs/api.md does not list {missing}"


def test_user_documents_link_only_to_files_in_the_repository() -> None:
    documents = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]
    for doc in documents:
        text = doc.read_text()
        assert "shared/DESIGN.md" not in text, doc
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_license_and_ignored_secrets() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored
