"""One duration format everywhere: every duration flag of every command, its environment
variable, the configuration file and the App spec read `90s`, `5m`, `1h30m` and plain seconds
through one parser, and refuse values outside their bounds naming the flag or field."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from syncer.cli import cli
from syncer.cli.common import Duration
from syncer.config import INTERVAL_BOUNDS, MAX_DURATION, TIMEOUT_BOUNDS, parse_config, parse_duration
from syncer.daemon.appspec import InvalidApp, app_spec
from syncer.errors import ConfigError

DURATION_NAME = re.compile(r"timeout|interval|duration|period|deadline|delay|wait_for")
"""Parameter names that hold a duration; each must be a Duration."""


def commands(group: click.Group, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from ((f"{name} {sub}", cmd) for sub, cmd in commands(command, ctx))
        else:
            yield name, command


def duration_options() -> list[tuple[str, click.Option]]:
    ctx = click.Context(cli)
    return [(f"{name} {option.opts[-1]}", option) for name, command in commands(cli, ctx)
            for option in command.params
            if isinstance(option, click.Option) and option.name and DURATION_NAME.search(option.name)]


def test_every_duration_flag_of_every_command_is_a_duration() -> None:
    options = duration_options()
    assert {"reconcile --timeout", "reconcile --request-timeout", "sync --timeout", "run --lease-duration",
            "diff --request-timeout", "status --request-timeout"} <= {name for name, _ in options}
    wrong = [name for name, option in options if not isinstance(option.type, Duration)]
    assert wrong == [], f"duration flags that do not take 90s, 5m, 1h30m: {wrong}"
    for name, option in options:
        assert option.type.convert("1m30s", option, None) == 90, name


def test_reconcile_takes_the_durations_the_readme_shows() -> None:
    """Refused before ("'5m' is not a valid float range")."""
    command = cli.get_command(click.Context(cli), "reconcile")
    assert command is not None
    ctx = command.make_context("reconcile", ["shop", "--timeout", "5m", "--request-timeout", "30s"])
    assert (ctx.params["timeout"], ctx.params["request_timeout"]) == (300, 30)
    assert command.make_context("reconcile", ["shop"]).params["timeout"] == 300


def test_the_request_timeout_variable_takes_a_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCER_REQUEST_TIMEOUT", "1m")
    command = cli.get_command(click.Context(cli), "status")
    assert command is not None
    assert command.make_context("status", []).params["request_timeout"] == 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "soon"], "Invalid value for '--timeout': \"soon\" is not a duration"),
        (["--timeout", "100000000h"], "Invalid value for '--timeout': \"100000000h\" is longer than the maximum"),
        (["--timeout", "0.5s"], "Invalid value for '--timeout': \"0.5s\" is shorter than the minimum of 1s"),
        (["--request-timeout", "0"], "Invalid value for '--request-timeout': \"0\" is shorter than the minimum of 1s"),
    ],
)
def test_a_bad_duration_flag_is_named_with_its_value(args: list[str], message: str) -> None:
    command = cli.get_command(click.Context(cli), "reconcile")
    assert command is not None
    with pytest.raises(click.BadParameter) as caught:
        command.make_context("reconcile", ["shop", *args])
    assert caught.value.format_message().startswith(message)


def test_no_duration_is_longer_than_a_year() -> None:
    with pytest.raises(ValueError, match="longer than the maximum of 8784h"):
        parse_duration("100000000h")
    assert parse_duration("8784h") == MAX_DURATION


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("interval", "100000000h", 'spec.interval: "100000000h" is longer than the maximum of 168h'),
        ("interval", "0.5s", 'spec.interval: "0.5s" is shorter than the minimum of 1s'),
        ("timeout", "48h", 'spec.timeout: "48h" is longer than the maximum of 24h'),
    ],
)
def test_an_app_with_an_interval_or_timeout_out_of_bounds_is_invalid(field: str, value: str, message: str) -> None:
    """Accepted before: `interval: 100000000h` overflowed the scheduler's clock
    (`date value out of range`) in the watch of all Apps, and the App never synced."""
    obj = {"apiVersion": "syncer.dev/v1alpha1", "kind": "App", "metadata": {"name": "shop", "namespace": "team"},
           "spec": {"repo": "https://git.example.com/shop.git", field: value}}
    with pytest.raises(InvalidApp) as caught:
        app_spec(obj)
    assert caught.value.problems == [message]


def test_the_configuration_file_has_the_same_bounds() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent("""\
            apps:
            - name: shop
              repo: https://git.example.com/shop.git
              interval: 100000000h
              timeout: 48h
            """), source="apps.yaml", base_dir=Path("/etc/syncer"))
    assert 'apps.yaml:4: apps[0] (shop): interval: "100000000h" is longer than the maximum of 168h' in str(caught.value)
    assert 'apps.yaml:5: apps[0] (shop): timeout: "48h" is longer than the maximum of 24h' in str(caught.value)


def test_the_bounds_accept_what_flux_users_write() -> None:
    for value in ("30s", "1m", "5m", "1h", "24h", "168h"):
        assert parse_duration(value, bounds=INTERVAL_BOUNDS) > 0
    for value in ("1s", "5m", "1h", "24h"):
        assert parse_duration(value, bounds=TIMEOUT_BOUNDS) > 0
