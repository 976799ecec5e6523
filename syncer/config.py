"""The daemon's configuration file: a list of apps, each a repository, a path and a namespace.

    apps:
    - name: shop
      repo: https://git.example.com/org/deploy.git
      revision: main
      path: apps/shop
      namespace: shop
      interval: 1m

The whole file is checked when it is loaded and every problem is reported at once, each
starting with `file:line: apps[i] (name): field:`. Unknown keys are errors: a misspelt
`selfheal:` silently ignored would leave an app doing something other than what its author
wrote. Relative local paths (a repository directory, key and token files) are taken relative
to the file, so the configuration means the same whatever directory the daemon starts in.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from syncer.diff import IgnoreRule, parse_ignore_rules
from syncer.errors import ConfigError, Problem
from syncer.hold import Hold
from syncer.model import AppId, ObjectRef, PruneBudget, parse_confirmation, parse_prune_budget
from syncer.sources.auth import GitAuth
from syncer.sources.git import check_revision
from syncer.sources.giturl import looks_like_url, parse_url, reject_unsafe
from syncer.sources.helm import HelmSettings
from syncer.sources.sops import AgeIdentities

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

T = TypeVar("T")

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(
    rf"(?P<plain>{_NUMBER})|(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?"
)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DURATION_HINT = "use e.g. 30s, 5m, 1h, 1h30m or plain seconds (90)"

APP_FIELDS = (
    "name", "repo", "revision", "path", "namespace", "createNamespace", "interval", "prune", "wait",
    "timeout", "selfHeal", "ignoreDifferences", "auth", "pruneConfirmations", "maxPrune",
)
AUTH_FIELDS = ("sshKeyFile", "knownHostsFile", "username", "tokenFile", "tokenEnv")
TOP_LEVEL_FIELDS = ("apps",)

DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 300.0


MAX_DURATION = 366 * 24 * 3600.0
"""No duration syncer reads is longer than a year. Far longer values are typos or attacks, and
they overflow the clocks they reach (`date value out of range` in the scheduler, OverflowError
in a thread's wait), so they are refused where they are read, naming the flag or field."""


@dataclass(frozen=True)
class DurationBounds:
    """The values a duration may take, both ends included."""

    minimum: float
    maximum: float


INTERVAL_BOUNDS = DurationBounds(minimum=1.0, maximum=7 * 24 * 3600.0)
"""An app's Git poll interval: 1s to 168h. Flux users write `interval: 30s` to `24h`, and some
`168h` for rarely changing sources; webhooks, reconcile requests and the watches act sooner
anyway. Below a second the app would keep a worker busy without pause."""
TIMEOUT_BOUNDS = DurationBounds(minimum=1.0, maximum=24 * 3600.0)
"""How long an app's sync may wait for health and CRDs: 1s to 24h. A tick holds a worker
while it waits, and Flux's and Argo CD's longest customary waits (Helm's `timeout: 1h` for
big charts) fit well inside."""


def parse_duration(
    value: object, *, allow_zero: bool = False, bounds: DurationBounds | None = None,
) -> float:
    """`90s`, `5m`, `1h30m`, `1.5h` or plain seconds (`300`) -> seconds, for every duration
    syncer reads: command-line flags and the configuration file alike (one format, kubectl's:
    its `--request-timeout` takes `1s`, `2m`, `3h` and reads a number without a unit as
    seconds). Raises ValueError with a message for people that shows the value. Values above
    `bounds` (else a year, MAX_DURATION) or below it are refused.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{_show(value)} is not a duration, {_DURATION_HINT}")
    text = str(value).strip()
    match = _DURATION.fullmatch(text) if text else None
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"{_show(value)} is not a duration, {_DURATION_HINT}")
    seconds = (
        float(match.group("h") or 0) * 3600 + float(match.group("m") or 0) * 60
        + float(match.group("s") or match.group("plain") or 0)
    )
    if bounds is not None and seconds < bounds.minimum and not (seconds == 0 and allow_zero):
        raise ValueError(f"{_show(value)} is shorter than the minimum of {format_duration(bounds.minimum)}")
    if seconds == 0 and not allow_zero:
        raise ValueError(f"{_show(value)} must be longer than zero")
    maximum = bounds.maximum if bounds is not None else MAX_DURATION
    if seconds > maximum:
        raise ValueError(f"{_show(value)} is longer than the maximum of {format_duration(maximum)}")
    return seconds


def bounded_duration(bounds: DurationBounds) -> Callable[[object], float]:
    """A converter for `checked_field`: parse_duration within `bounds`."""
    return functools.partial(parse_duration, bounds=bounds)


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration for whole seconds: 5400 -> `1h30m`."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


@dataclass(frozen=True)
class AppConfig:
    """One app the daemon keeps in sync."""

    name: str
    """Names the app's ApplySet parent (`ConfigMap syncer-<name>`), its lock and its metrics."""
    repo: str
    """A URL, or an absolute path to a local repository or directory."""
    revision: str | None = None
    """Branch, tag or commit; None follows the remote's default branch."""
    path: str = "."
    namespace: str = "default"
    create_namespace: bool = False
    """Add the Namespace `namespace` to the render when the manifests do not define it."""
    interval: float = DEFAULT_INTERVAL
    prune: bool = True
    wait: bool = False
    timeout: float = DEFAULT_TIMEOUT
    self_heal: bool = True
    """Re-apply the last render on every tick, so live drift is reverted even without a commit."""
    prune_confirmations: tuple[ObjectRef, ...] = ()
    """Objects of a protected kind prune may delete (`pruneConfirmations`)."""
    max_prune: PruneBudget | None = None
    """The app's prune budget (`maxPrune`); None: the default (`DEFAULT_PRUNE_BUDGET`)."""
    ignore: tuple[IgnoreRule, ...] = ()
    auth: GitAuth | None = None
    where: str = ""
    """`file:line: apps[i] (name)`, for messages about this app."""
    home: str | None = None
    """The namespace of the app's inventory and lock: an App object's own namespace. None:
    `namespace` (a configuration file's app, the CLI's)."""
    adopt_from: str | None = None
    """The namespace of the app's inventory before the upgrade to (namespace, name) identity,
    when it differs from `home` and no other App can claim it (`syncer.apply.upgrade`)."""
    helm: HelmSettings = HelmSettings()
    """How the path is rendered when it is a Helm chart (an App's `spec.helm`); without a
    release name, the release is named after the app (`for_app`)."""
    age_identities: AgeIdentities | None = None
    """Decrypt the render's SOPS-encrypted documents with these (an App's `spec.decryption`,
    read from its Secret with its identity at every tick)."""
    manual_approval: bool = False
    """An App's `spec.approval: manual`: each new revision is planned and waits for
    `syncer approve` (`syncer.daemon.approval`)."""
    approved_plan: str | None = None
    """The digest of the plan a user approved (`spec.approvedPlan`)."""
    hold: Hold | None = None
    """A rollback's hold (`spec.hold`, `syncer.hold`): the app stays at its revision while
    the tracked ref renders as the revision rolled back from did."""

    @property
    def chart(self) -> HelmSettings:
        """The Helm settings with the release named after the app unless they name it."""
        return self.helm if self.helm.release_name else replace(self.helm, release_name=self.name)

    @property
    def id(self) -> AppId:
        return AppId(namespace=self.home or self.namespace, name=self.name)


@dataclass(frozen=True)
class Config:
    apps: tuple[AppConfig, ...]
    source: str = "<config>"
    """The file the configuration came from, for messages."""

    def app(self, name: str) -> AppConfig:
        for app in self.apps:
            if app.name == name:
                return app
        raise KeyError(name)


def load_config(path: Path) -> Config:
    """Read and validate a configuration file; ConfigError lists every problem found."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error.strerror or error}") from None
    return parse_config(text, source=str(path), base_dir=path.parent)


def parse_config(text: str, *, source: str, base_dir: Path) -> Config:
    """Validate configuration text; `source` names it in messages, `base_dir` anchors
    relative paths."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}") from None
    lines = _LineIndex(node)
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with an `apps:` list, e.g.\napps:\n- name: shop\n  repo: ...")
    for key in raw:
        if key not in TOP_LEVEL_FIELDS:
            problems.append(Problem(f"{source}:{lines.key((), key)}", f"unknown key {_show(key)}; expected apps"))
    raw_apps = raw.get("apps")
    if not isinstance(raw_apps, list) or not raw_apps:
        problems.append(Problem(f"{source}:{lines.value((), 'apps')}", "apps: must be a non-empty list of apps"))
        raise _config_error(source, problems)
    apps: list[AppConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw_apps):
        checker = _AppChecker(entry, index=index, source=source, base_dir=base_dir, lines=lines)
        app = checker.parse()
        problems += checker.problems
        name = checker.entry.get("name")
        if isinstance(name, str) and name in seen:
            problems.append(Problem(
                f"{source}:{lines.value(('apps', index), 'name')}: {checker.label}",
                f"name: {_show(name)} is already used by apps[{seen[name]}]; app names must be unique",
            ))
        elif isinstance(name, str):
            seen[name] = index
        if app is not None:
            apps.append(app)
    if problems:
        raise _config_error(source, problems)
    return Config(apps=tuple(apps), source=source)


def _config_error(source: str, problems: list[Problem]) -> ConfigError:
    if len(problems) == 1:
        return ConfigError(str(problems[0]))
    listed = "\n".join(f"  {p}" for p in problems)
    return ConfigError(f"{source}: {len(problems)} problems in the configuration:\n{listed}")


def _show(value: object) -> str:
    """A value as it would be written in YAML, quoted when it is a string."""
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return repr(value)


def checked_field(
    entry: dict[str, Any], key: str, convert: Callable[[Any], T], default: T, *, problem: Callable[[str, str], None]
) -> T:
    """`entry[key]` converted, or `default` when absent or null; a ValueError from `convert`
    is reported through `problem(key, message)` (and the default used, to go on checking)."""
    if entry.get(key) is None:
        return default
    try:
        return convert(entry[key])
    except ValueError as error:
        problem(key, str(error))
        return default


FieldGetter = Callable[[str, Callable[[Any], Any], Any], Any]


def shared_fields(get: FieldGetter) -> dict[str, Any]:
    """The AppConfig fields a configuration file entry and an App object spell the same way,
    checked the same way: `get(key, convert, default)`."""
    return {
        "revision": get("revision", _revision, None),
        "path": get("path", _relative_path, "."),
        "create_namespace": get("createNamespace", _boolean, False),
        "interval": get("interval", bounded_duration(INTERVAL_BOUNDS), DEFAULT_INTERVAL),
        "prune": get("prune", _boolean, True),
        "wait": get("wait", _boolean, False),
        "timeout": get("timeout", bounded_duration(TIMEOUT_BOUNDS), DEFAULT_TIMEOUT),
        "self_heal": get("selfHeal", _boolean, True),
        "prune_confirmations": get("pruneConfirmations", _confirmations, ()),
        "max_prune": get("maxPrune", parse_prune_budget, None),
    }


def _confirmations(value: object) -> tuple[ObjectRef, ...]:
    """`pruneConfirmations`: a list of `KIND/NAME` or `KIND/NAMESPACE/NAME`."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of KIND/NAME or KIND/NAMESPACE/NAME (e.g. Namespace/shop)")
    return tuple(parse_confirmation(item) for item in value)


class _LineIndex:
    """Line numbers of keys and values in the composed YAML, by path (`("apps", 1)`)."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def _node(self, path: tuple[object, ...]) -> yaml.Node | None:
        node = self._root
        for step in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                node = node.value[step]
            else:
                return None
        return node

    def value(self, path: tuple[object, ...], key: object | None = None) -> int:
        node = self._node(path + ((key,) if key is not None else ()))
        if node is None:
            node = self._node(path)
        return node.start_mark.line + 1 if node is not None else 1

    def key(self, path: tuple[object, ...], key: object) -> int:
        node = self._node(path)
        if isinstance(node, yaml.MappingNode):
            for k, _ in node.value:
                if k.value == key:
                    return int(k.start_mark.line) + 1
        return self.value(path)


class _AppChecker:
    """Turns one `apps[i]` entry into an AppConfig, collecting every problem on the way."""

    def __init__(self, entry: object, *, index: int, source: str, base_dir: Path, lines: _LineIndex) -> None:
        self.entry = entry if isinstance(entry, dict) else {}
        self.index = index
        self.source = source
        self.base_dir = base_dir
        self.lines = lines
        self.path: tuple[object, ...] = ("apps", index)
        self.problems: list[Problem] = []
        name = self.entry.get("name")
        self.label = f"apps[{index}] ({name})" if isinstance(name, str) and name else f"apps[{index}]"
        if not isinstance(entry, dict):
            self.problems.append(Problem(
                f"{source}:{lines.value(self.path)}", f"{self.label}: must be a mapping with name, repo, ..."
            ))

    @property
    def where(self) -> str:
        return f"{self.source}:{self.lines.value(self.path)}: {self.label}"

    def problem(self, key: str, message: str) -> None:
        line = self.lines.key(self.path, key)
        self.problems.append(Problem(f"{self.source}:{line}: {self.label}", f"{key}: {message}"))

    def get(self, key: str, convert: Callable[[Any], T], default: T) -> T:
        return checked_field(self.entry, key, convert, default, problem=self.problem)

    def parse(self) -> AppConfig | None:
        if not isinstance(self.entry, dict) or self.problems:
            return None
        for key in self.entry:
            if key not in APP_FIELDS:
                hint = _close_match(str(key), APP_FIELDS)
                line = self.lines.key(self.path, key)
                self.problems.append(Problem(
                    f"{self.source}:{line}: {self.label}",
                    f"unknown key {_show(key)}" + (f" (did you mean {hint}?)" if hint else "")
                    + f"; expected one of {', '.join(APP_FIELDS)}",
                ))
        name = self.get("name", _dns_label, "")
        if "name" not in self.entry or self.entry["name"] is None:
            self.problem("name", "required (a DNS-1123 label such as shop; it names the app's inventory)")
        repo = self.get("repo", self._repo, "")
        if "repo" not in self.entry or self.entry["repo"] is None:
            self.problem("repo", "required (a Git URL or a local path)")
        app = AppConfig(
            name=name,
            repo=repo,
            namespace=self.get("namespace", _dns_label, "default"),
            **shared_fields(self.get),
            ignore=self._ignore(),
            auth=self._auth(),
            where=self.where,
        )
        return None if self.problems else app

    def _repo(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a Git URL or a local path")
        try:
            reject_unsafe(value)
            if "://" in value or (looks_like_url(value) and not (self.base_dir / value).exists()):
                parse_url(value)  # what git would be given: refused here, not at the first sync
                return value
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return str(self._local_path(value))

    def _local_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).absolute()

    def _ignore(self) -> tuple[IgnoreRule, ...]:
        raw = self.entry.get("ignoreDifferences")
        if raw is None:
            return ()
        where = f"{self.source}:{self.lines.key(self.path, 'ignoreDifferences')}: {self.label}"
        try:
            return tuple(parse_ignore_rules(raw, where=where))
        except ConfigError as error:
            prefix = f"{where}: "
            message = str(error)
            self.problems.append(Problem(where, message[len(prefix):] if message.startswith(prefix) else message))
            return ()

    def _auth(self) -> GitAuth | None:
        raw = self.entry.get("auth")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.problem("auth", f"must be a mapping with some of {', '.join(AUTH_FIELDS)}")
            return None
        for key in raw:
            if key not in AUTH_FIELDS:
                hint = _close_match(str(key), AUTH_FIELDS)
                self.problem("auth", f"unknown key {_show(key)}" + (f" (did you mean {hint}?)" if hint else "")
                             + f"; expected one of {', '.join(AUTH_FIELDS)}")
        values: dict[str, str] = {}
        for key in AUTH_FIELDS:
            value = raw.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                self.problem("auth", f"{key}: must be a non-empty string")
                continue
            values[key] = value
        if "tokenFile" in values and "tokenEnv" in values:
            self.problem("auth", "give the token either as tokenFile or as tokenEnv, not both")

        def path(key: str) -> Path | None:
            return self._local_path(values[key]) if key in values else None

        return GitAuth(
            ssh_key_file=path("sshKeyFile"),
            known_hosts_file=path("knownHostsFile"),
            username=values.get("username"),
            token_file=path("tokenFile"),
            token_env=values.get("tokenEnv"),
        )


def _dns_label(value: object) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{_show(value)} is not a valid name: use at most 63 lower-case letters, digits "
            "and '-', starting and ending with a letter or digit (a DNS-1123 label)"
        )
    return value


def _revision(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"{value} is a number; quote it (\"{value}\") if it is a tag or a SHA")
    if not isinstance(value, str) or not value:
        raise ValueError("must be a branch, tag or commit SHA")
    try:
        check_revision(value)
    except ConfigError as error:
        raise ValueError(str(error)) from None
    return value


def _relative_path(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a path inside the repository, e.g. apps/shop (or . for its root)")
    if value.startswith("/") or ".." in Path(value).parts:
        raise ValueError(f"{_show(value)} must stay inside the repository: no leading '/', no '..'")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not true or false")
    return value


def _close_match(key: str, candidates: tuple[str, ...]) -> str | None:
    """The intended key for a likely typo (`selfheal` -> selfHeal)."""
    lowered = {c.lower(): c for c in candidates}
    if key.lower() in lowered:
        return lowered[key.lower()]
    matches = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
    return matches[0] if matches else None


__all__ = [
    "AUTH_FIELDS", "APP_FIELDS", "AppConfig", "Config", "DurationBounds", "INTERVAL_BOUNDS", "MAX_DURATION",
    "TIMEOUT_BOUNDS", "bounded_duration", "checked_field", "format_duration", "shared_fields", "load_config",
    "parse_config", "parse_duration",
]
