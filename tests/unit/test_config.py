"""The daemon's configuration file: what is accepted, and the message for what is not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from syncer.config import format_duration, load_config, parse_config, parse_duration
from syncer.errors import ConfigError
from syncer.sources import GitAuth


def parse(text: str, base_dir: Path = Path("/etc/syncer")) -> object:
    return parse_config(textwrap.dedent(text), source="apps.yaml", base_dir=base_dir)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("2m5s", 125), ("1h0m1s", 3601),
     ("90", 90), (90, 90), (" 2.5 ", 2.5), ("1.5m", 90), ("0.5h", 1800)],
)
def test_durations(text: str | int, seconds: float) -> None:
    """One format for flags and the configuration file; a plain number is seconds (kubectl)."""
    assert parse_duration(text) == seconds


def test_zero_only_where_allowed() -> None:
    assert parse_duration("0s", allow_zero=True) == parse_duration(0, allow_zero=True) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5x", '"5x" is not a duration, use e.g. 30s, 5m, 1h'),
        ("", '"" is not a duration'),
        ("m5", '"m5" is not a duration'),
        ("5m1h", '"5m1h" is not a duration'),
        ("1.5.0m", '"1.5.0m" is not a duration'),
        ("-5s", '"-5s" is not a duration'),
        ("h", '"h" is not a duration'),
        ("0s", '"0s" must be longer than zero'),
        (0, "0 must be longer than zero"),
        (True, "True is not a duration"),
        ([], "[] is not a duration"),
    ],
)
def test_bad_durations(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        parse_duration(value)


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 3600, 5400, 86461])
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_full_app_with_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = parse_config(textwrap.dedent("""\
        apps:
        - name: shop
          repo: https://git.example.com/org/deploy.git
          revision: main
          path: apps/shop
          namespace: shop
          interval: 1m
          prune: false
          wait: true
          timeout: 2m
          selfHeal: false
          ignoreDifferences:
          - group: apps
            kind: Deployment
            jsonPointers: [/spec/replicas]
          auth: {tokenFile: secrets/token, username: bot}
        - name: local
          repo: ./deploy
        """), source="apps.yaml", base_dir=tmp_path)
    shop, local = config.apps
    assert (shop.name, shop.repo, shop.revision, shop.path, shop.namespace) == (
        "shop", "https://git.example.com/org/deploy.git", "main", "apps/shop", "shop")
    assert (shop.interval, shop.prune, shop.wait, shop.timeout, shop.self_heal) == (60, False, True, 120, False)
    assert [(r.group, r.kind, r.json_pointers) for r in shop.ignore] == [("apps", "Deployment", ("/spec/replicas",))]
    assert shop.auth == GitAuth(token_file=tmp_path / "secrets/token", username="bot")
    # Defaults, and a local repository relative to the configuration file.
    assert local.repo == str(tmp_path / "deploy")
    assert (local.revision, local.path, local.namespace, local.interval, local.timeout) == (None, ".", "default", 60, 300)
    assert (local.prune, local.wait, local.self_heal, local.ignore, local.auth) == (True, False, True, (), None)


def test_scp_like_urls_stay_urls(tmp_path: Path) -> None:
    config = parse_config("apps:\n- {name: a, repo: 'git@github.com:org/deploy.git'}\n",
                          source="apps.yaml", base_dir=tmp_path)
    assert config.apps[0].repo == "git@github.com:org/deploy.git"


BAD_CONFIGS = [
    pytest.param(
        """\
        apps:
        - name: web
          repo: https://h/r.git
        - name: shop
          repo: https://h/r.git
          interval: 5x
        """,
        'apps.yaml:6: apps[1] (shop): interval: "5x" is not a duration, use e.g. 30s, 5m, 1h',
        id="bad-interval",
    ),
    pytest.param(
        """\
        apps:
        - name: shop
          repo: https://h/r.git
          selfheal: false
        """,
        'apps.yaml:4: apps[0] (shop): unknown key "selfheal" (did you mean selfHeal?)',
        id="typo-key",
    ),
    pytest.param(
        "apps:\n- {name: shop, repo: https://h/r.git}\nproject: x\n",
        'apps.yaml:3: unknown key "project"; expected apps',
        id="unknown-top-level-key",
    ),
    pytest.param("apps: []\n", "apps.yaml:1: apps: must be a non-empty list", id="no-apps"),
    pytest.param("- name: shop\n", "apps.yaml: expected a mapping with an `apps:` list", id="not-a-mapping"),
    pytest.param("apps: [\n", "apps.yaml:2: not valid YAML", id="bad-yaml"),
    pytest.param("apps:\n- {repo: https://h/r.git}\n", "apps.yaml:2: apps[0]: name: required", id="no-name"),
    pytest.param("apps:\n- {name: shop}\n", "apps.yaml:2: apps[0] (shop): repo: required", id="no-repo"),
    pytest.param(
        "apps:\n- {name: Shop_1, repo: https://h/r.git}\n",
        'apps.yaml:2: apps[0] (Shop_1): name: "Shop_1" is not a valid name',
        id="name-not-dns-label",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git}\n- {name: a, repo: https://h/s.git}\n",
        'apps.yaml:3: apps[1] (a): name: "a" is already used by apps[0]; app names must be unique',
        id="duplicate-name",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, namespace: Shop}\n",
        'apps[0] (a): namespace: "Shop" is not a valid name',
        id="bad-namespace",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, prune: 'yes please'}\n",
        'apps[0] (a): prune: "yes please" is not true or false',
        id="prune-not-bool",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, path: ../other}\n",
        'apps[0] (a): path: "../other" must stay inside the repository',
        id="path-escapes",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, revision: 1.2}\n",
        'apps[0] (a): revision: 1.2 is a number; quote it ("1.2")',
        id="numeric-revision",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, revision: ../x}\n",
        "apps[0] (a): revision: revision '../x': not a branch, tag or commit SHA",
        id="bad-revision",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: 'ext::sh -c touch% /tmp/pwned'}\n",
        "apps[0] (a): repo: repository 'ext::sh -c touch% /tmp/pwned': git remote helpers",
        id="unsafe-repo",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, timeout: 10 minutes}\n",
        'apps[0] (a): timeout: "10 minutes" is not a duration',
        id="timeout-in-words",
    ),
    pytest.param(
        "apps:\n- name: a\n  repo: https://h/r.git\n  ignoreDifferences:\n  - {kind: Deployment, jsonPointers: [spec]}\n",
        "apps.yaml:4: apps[0] (a): ignoreDifferences[0].jsonPointers[0]: 'spec' is not a JSON pointer",
        id="bad-ignore-rule",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, auth: {token: abc}}\n",
        'apps[0] (a): auth: unknown key "token" (did you mean tokenEnv?); expected one of sshKeyFile',
        id="auth-unknown-key",
    ),
    pytest.param(
        "apps:\n- {name: a, repo: https://h/r.git, auth: {tokenFile: t, tokenEnv: T}}\n",
        "apps[0] (a): auth: give the token either as tokenFile or as tokenEnv, not both",
        id="auth-two-tokens",
    ),
    pytest.param("apps:\n- just-a-string\n", "apps.yaml:2: apps[0]: must be a mapping", id="app-not-mapping"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_configs_name_the_app_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(text)
    assert message in str(raised.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        parse("""\
            apps:
            - name: a
              repo: https://h/r.git
              interval: soon
              wait: maybe
            - name: b
            """)
    message = str(raised.value)
    assert message.startswith("apps.yaml: 3 problems in the configuration:")
    assert 'apps.yaml:4: apps[0] (a): interval: "soon" is not a duration' in message
    assert 'apps.yaml:5: apps[0] (a): wait: "maybe" is not true or false' in message
    assert "apps.yaml:6: apps[1] (b): repo: required" in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path}/apps.yaml: cannot read the configuration"):
        load_config(tmp_path / "apps.yaml")
