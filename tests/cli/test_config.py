"""mail-watchdog config check and config example."""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from watchdog.cli import app
from watchdog.cli.config_cmd import EXAMPLE
from watchdog.config import Settings, load_settings
from watchdog.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

VALID = """\
[database]
url = "postgresql://watchdog:hunter2@db.example.com/watchdog"

[http]
port = 9999

[mailboxes.bounces]
host = "imap.example.com"
username = "bounces@example.com"
password_file = "{secret}"

[local.archive]
path = "{archive}"
format = "mbox"
"""


def write_config(tmp_path: Path, text: str, secret_mode: int = 0o600) -> Path:
    secret = tmp_path / "imap-password"
    secret.write_text("s3cret-imap\n")
    secret.chmod(secret_mode)
    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    path = tmp_path / "watchdog.toml"
    path.write_text(text.format(secret=secret, archive=archive))
    return path


def test_example_file_matches_command() -> None:
    result = runner.invoke(app, ["config", "example"])
    assert result.exit_code == 0
    assert result.stdout == EXAMPLE
    assert (ROOT / "mail-watchdog.example.toml").read_text() == EXAMPLE


def test_example_loads() -> None:
    settings = load_settings(ROOT / "mail-watchdog.example.toml")
    assert settings.mailboxes["bounces"].host == "imap.example.com"
    assert settings.local["archive"].path == Path("/var/mail/bounce-archive")


def setting_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += setting_keys(annotation, f"{prefix}{name}.")
        elif name in ("mailboxes", "local"):
            entry = Settings.model_fields[name].annotation.__args__[1]
            keys += setting_keys(entry, f"{prefix}{name}.NAME.")
        else:
            keys.append(prefix + name)
    return keys


@pytest.mark.parametrize("key", setting_keys(Settings))
def test_example_shows_every_key(key: str) -> None:
    name = key.rpartition(".")[2]
    line = re.search(rf"^(# )?{name} = .*$", EXAMPLE, re.MULTILINE)
    assert line is not None, f"{key} missing from the example"
    before = EXAMPLE[: line.start()].rstrip("\n").rpartition("\n")[2]
    assert before.startswith("#"), f"{key} has no comment line above it"


def test_example_is_valid_toml() -> None:
    data = tomllib.loads(EXAMPLE)
    assert data["database"]["url"] == "sqlite:///mail-watchdog.db"


def test_check_valid_prints_summary(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID)
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "configuration is valid" in result.stdout
    assert "bounces" in result.stdout
    assert "imaps://bounces@example.com@imap.example.com:993/INBOX" in result.stdout
    assert "archive" in result.stdout
    assert "http://127.0.0.1:9999/metrics" in result.stdout


def test_check_hides_secrets(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID)
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert "hunter2" not in result.stdout
    assert "s3cret-imap" not in result.stdout
    assert "postgresql://watchdog:***@db.example.com/watchdog" in result.stdout


def test_check_invalid_value_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID.replace("port = 9999", 'port = "high"'))
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "http.port" in result.stderr
    assert "WATCHDOG_HTTP__PORT" in result.stderr


def test_check_unknown_key_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID + "\n[http2]\nport = 1\n")
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "http2" in result.stderr


def test_check_readable_password_file_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID, secret_mode=0o644)
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "chmod 600" in " ".join(result.stderr.split())


def test_check_missing_file_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    result = runner.invoke(app, ["config", "check", "--config", str(missing)])
    assert result.exit_code == 2
    assert "not found" in " ".join(result.stderr.split())


def test_check_without_file_uses_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0
    assert "sqlite:///mail-watchdog.db" in result.stdout


def test_sending_domains_normalised() -> None:
    settings = Settings(sending={"domains": ["Example.COM.", "bücher.de"]})
    assert settings.sending.domains == ["example.com", "xn--bcher-kva.de"]


@pytest.mark.parametrize(
    "sending",
    [{"domains": ["a..b"]}, {"domains": ["localhost"]}, {"ips": ["192.0.2"]}],
)
def test_sending_invalid_rejected(sending: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationError):
        Settings(sending=sending)


def test_database_password_masked_in_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, **{"database.url": "mysql://u:hunter2@db.example/x"})
    assert "hunter2" not in str(caught.value)
    assert "database.url" in str(caught.value)


def test_unknown_key_suggests_spelling(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[databse]\nurl = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError, match="did you mean 'database'"):
        load_settings(path)


def test_top_level_key_after_table_explained(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[dns]\nrules_dir = "/tmp"\n')
    with pytest.raises(ConfigError, match="before the first"):
        load_settings(path)


def test_environment_value_blamed_on_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_HTTP__PORT", "abc")
    with pytest.raises(ConfigError, match="from WATCHDOG_HTTP__PORT"):
        load_settings(None)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("database.url", "sqlite://relative.db", "three slashes"),
        ("rules_dir", "/nonexistent", "not a rules directory"),
        ("dns.nameservers", ["dns.example"], "not an IP address"),
        ("limits.memory_mb", 100, "greater than or equal to 256"),
    ],
)
def test_invalid_values_rejected(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, **{key: value})


def test_empty_password_file_rejected(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("\n")
    secret.chmod(0o600)
    mailbox = Settings(
        mailboxes={"b": {"host": "127.0.0.1", "username": "u", "password_file": secret}}
    ).mailboxes["b"]
    with pytest.raises(ConfigError, match="is empty"):
        mailbox.read_password()


def test_password_and_file_both_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="keep one of them"):
        Settings(
            mailboxes={
                "b": {
                    "host": "127.0.0.1",
                    "username": "u",
                    "password": "x",
                    "password_file": tmp_path / "pw",
                }
            }
        )


def test_check_rejects_unknown_zone(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[blocklists]\nenable = ["nosuch.zone.example"]\n')
    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "nosuch.zone.example" in result.output


def test_check_rejects_missing_local_path(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[local.archive]\npath = "{tmp_path / "absent"}"\n')
    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "local.archive.path" in result.output


def test_run_rejects_broken_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).parents[2] / "rules", rules)
    (rules / "classify" / "05-local.yaml").write_text("patterns: [{reason: 3}]\n")
    result = runner.invoke(
        app,
        ["run", "--database", f"sqlite:///{tmp_path / 'w.db'}"],
        env={"WATCHDOG_RULES_DIR": str(rules)},
    )
    assert result.exit_code == 2
    assert "05-local.yaml" in result.output


def test_check_mta_log_summary(tmp_path: Path) -> None:
    """config check prints the MTA log source and warns about a missing file."""
    missing = tmp_path / "mail.log"
    path = tmp_path / "watchdog.toml"
    path.write_text(f'[mta_log]\nenabled = true\npath = "{missing}"\n')
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"mta log:   {missing}, every 10 s, first start at the end" in result.stdout
    assert "does not exist yet" in result.stdout
    missing.write_text("")
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert "warning" not in result.stdout


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("folder", "is not a regular file"), ("fifo", "is not a regular file")],
)
def test_check_mta_log_not_a_file(tmp_path: Path, kind: str, problem: str) -> None:
    """config check warns about a log path the daemon cannot read lines from."""
    log = tmp_path / "mail.log"
    if kind == "folder":
        log.mkdir()
    else:
        os.mkfifo(log)
    path = tmp_path / "watchdog.toml"
    path.write_text(f'[mta_log]\nenabled = true\npath = "{log}"\n')
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"warning: {log} {problem}" in result.stdout


def test_check_mta_log_invalid_agent(tmp_path: Path) -> None:
    """An unknown delivery agent is rejected with the valid names."""
    path = tmp_path / "watchdog.toml"
    path.write_text('[mta_log]\nagents = ["smtp", "smpt"]\n')
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "mta_log.agents: unknown delivery agent 'smpt'" in result.output
