"""An `App` object (syncer.dev/v1alpha1) turned into the daemon's per-app configuration.

Pure: `app_spec(obj)` reads nothing but the object, so the file mode (`syncer.config`) and
the App mode build the same `AppConfig` from the same checks, and an invalid App is reported
with every problem at once (on its status, as Stalled) instead of failing a sync later.

The API server checks only the types of the fields (the CRD's schema); everything with a
meaning (durations, revisions, paths, names) is checked here, with the same rules and
messages as the configuration file.

An App is written by a tenant, and the daemon acts on it with its own rights, so the
`TenantPolicy` (the operator's `syncer run` flags) decides what an App may reach beyond its
own namespace: local repositories (the daemon's disk) only with `--allow-local-repos`, and
never the daemon's Git cache or credentials; notification receivers only at addresses that
are not the daemon's own, the node's or the cloud's (`--notify-allow` adds some back).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from syncer.config import AppConfig, _boolean, _dns_label, checked_field, shared_fields
from syncer.daemon.notifytarget import AddressAllowList, TargetRefused, check_target
from syncer.diff import IgnoreRule, parse_ignore_rules
from syncer.errors import ConfigError, Problem
from syncer.hold import parse_hold
from syncer.model import Object
from syncer.sources.giturl import looks_like_url, parse_url, reject_unsafe
from syncer.sources.helm import HelmSettings, inline_values

T = TypeVar("T")

GROUP = "syncer.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "App"
RECONCILE_ANNOTATION = "syncer.dev/reconcile-requested-at"
"""Any new value asks for a sync now (as Flux's reconcile.fluxcd.io/requestedAt)."""
PRUNE_FINALIZER = "syncer.dev/prune"
"""Opt-in: with it (and spec.prune), deleting the App first deletes the app's objects."""
DEFAULT_SECRET_KEY = "secret"

SPEC_FIELDS = (
    "repo", "revision", "path", "secretRef", "targetNamespace", "createNamespace", "prune", "selfHeal",
    "wait", "timeout", "interval", "suspend", "serviceAccountName", "ignoreDifferences", "notification", "helm",
    "decryption", "pruneConfirmations", "maxPrune", "approval", "approvedPlan", "hold",
)
HELM_FIELDS = ("releaseName", "valuesFiles", "values", "valuesFrom")
VALUES_FROM_FIELDS = ("kind", "name", "valuesKey", "optional")
DEFAULT_VALUES_KEY = "values.yaml"
"""Flux's default `valuesKey`."""
_RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class TenantPolicy:
    """What the operator lets an App ask for (flags of `syncer run`)."""

    require_service_account: bool = False
    allow_local_repos: bool = False
    """Local paths and file:// URLs, read with the daemon's filesystem rights: off by default,
    since a tenant could read any repository or directory the daemon can."""
    private_dirs: tuple[Path, ...] = ()
    """The daemon's Git cache (every tenant's clones and exports) and its credentials files:
    never a repository, nor inside or around one, even with allow_local_repos."""
    notify_allow: AddressAllowList = field(default_factory=AddressAllowList)
    """Addresses refused by default that App receivers may reach (`--notify-allow`)."""


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of a Secret in the App's namespace."""

    name: str
    key: str = DEFAULT_SECRET_KEY


@dataclass(frozen=True)
class ValuesReference:
    """A chart's values in a ConfigMap or Secret of the App's namespace (Flux's `valuesFrom`),
    read with the App's identity at every sync."""

    kind: str
    name: str
    key: str = DEFAULT_VALUES_KEY
    optional: bool = False
    """A missing object or key is skipped, not an error."""

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} key {self.key}"


@dataclass(frozen=True)
class Notification:
    """A webhook receiving the app's failures, recoveries and health changes."""

    url: str
    secret: SecretKeyRef | None = None


@dataclass(frozen=True)
class AppSpec:
    """What one App asks for. `config` is exactly what the file mode would build."""

    config: AppConfig
    app_namespace: str
    """The App's own namespace (home of its service account and Secrets)."""
    suspend: bool = False
    service_account: str | None = None
    git_secret: str | None = None
    """The Secret with Git credentials (username/password or identity/known_hosts)."""
    notification: Notification | None = None
    values_from: tuple[ValuesReference, ...] = ()
    """The chart's values read from the cluster, applied before `spec.helm.values`."""
    decryption_secret: str | None = None
    """The Secret of age identities (`*.agekey`) that decrypt SOPS-encrypted manifests."""

    @property
    def user(self) -> str | None:
        """The user every request of the app's sync is made as (impersonation)."""
        if self.service_account is None:
            return None
        return f"system:serviceaccount:{self.app_namespace}:{self.service_account}"


class InvalidApp(ConfigError):
    """The App cannot be served; `reason` is the Stalled condition's reason."""

    def __init__(self, subject: str, problems: list[str], *, reason: str = "InvalidSpec") -> None:
        self.problems = problems
        self.reason = reason
        super().__init__(f"{subject}: " + "; ".join(problems))


def app_ref(obj: Object) -> str:
    metadata = obj.get("metadata") or {}
    return f"App/{metadata.get('namespace')}/{metadata.get('name')}"


def app_spec(obj: Object, *, policy: TenantPolicy = TenantPolicy()) -> AppSpec:
    """The per-app configuration an App asks for, within what `policy` allows; raises
    InvalidApp listing every problem."""
    checker = _SpecChecker(obj, policy=policy)
    spec = checker.parse()
    if checker.problems:
        raise InvalidApp(app_ref(obj), checker.problems)
    assert spec is not None
    if policy.require_service_account and spec.service_account is None:
        raise InvalidApp(app_ref(obj), [
            "spec.serviceAccountName: required, the daemon runs with --require-service-account (every app "
            "syncs with the rights of a service account of its own namespace)"
        ], reason="ServiceAccountRequired")
    return spec


class _SpecChecker:
    def __init__(self, obj: Object, *, policy: TenantPolicy) -> None:
        self.policy = policy
        metadata = obj.get("metadata") or {}
        self.name = str(metadata.get("name") or "")
        self.namespace = str(metadata.get("namespace") or "")
        spec = obj.get("spec")
        self.spec: dict[str, Any] = spec if isinstance(spec, dict) else {}
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"spec.{key}: {message}")

    def get(self, key: str, convert: Callable[[Any], T], default: T) -> T:
        return checked_field(self.spec, key, convert, default, problem=self.problem)

    def parse(self) -> AppSpec | None:
        for key in self.spec:
            if key not in SPEC_FIELDS:
                self.problems.append(f"spec: unknown field {key!r}; expected one of {', '.join(SPEC_FIELDS)}")
        try:
            _dns_label(self.name)
        except ValueError as error:
            self.problems.append(f"metadata.name: {error}; it names the app's inventory")
        if self.spec.get("repo") is None:
            self.problem("repo", "required (a Git URL or an absolute local path)")
        config = AppConfig(
            name=self.name,
            repo=self.get("repo", self._repo, ""),
            namespace=self.get("targetNamespace", _dns_label, self.namespace),
            **shared_fields(self.get),
            ignore=self._ignore(),
            where=f"App/{self.namespace}/{self.name}",
            home=self.namespace,
            helm=self.get("helm", self._helm, HelmSettings()),
            manual_approval=self.get("approval", _approval, False),
            approved_plan=self.get("approvedPlan", _digest, None),
            hold=self.get("hold", parse_hold, None),
        )
        return AppSpec(
            config=config,
            app_namespace=self.namespace,
            suspend=self.get("suspend", _boolean, False),
            service_account=self.get("serviceAccountName", _dns_subdomain, None),
            git_secret=self.get("secretRef", _secret_name, None),
            notification=self.get("notification", self._notification, None),
            values_from=self.get("helm", self._values_from, ()),
            decryption_secret=self.get("decryption", _decryption, None),
        )

    def _helm(self, value: object) -> HelmSettings:
        """`spec.helm`: the path is a chart, rendered with these settings (valuesFrom apart)."""
        if not isinstance(value, dict):
            raise ValueError("must be {releaseName, valuesFiles, values, valuesFrom}")
        unknown = [key for key in value if key not in HELM_FIELDS]
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}; expected one of {', '.join(HELM_FIELDS)}")
        release = value.get("releaseName", self.name)
        if not isinstance(release, str) or len(release) > 53 or not _RELEASE_NAME.fullmatch(release):
            raise ValueError(f"releaseName: {release!r} is not a Helm release name (lower-case DNS name, at most 53 "
                             "characters)")
        files = value.get("valuesFiles") or []
        if not isinstance(files, list) or not all(isinstance(file, str) and file for file in files):
            raise ValueError("valuesFiles: must be a list of paths in the repository, relative to the chart")
        for file in files:
            if file.startswith("/") or "://" in file:
                raise ValueError(f"valuesFiles: {file!r} must be a path in the repository, relative to the chart")
        inline = value.get("values")
        if inline is not None and not isinstance(inline, dict):
            raise ValueError("values: must be an object of chart values")
        return HelmSettings(release_name=release, values_files=tuple(files), required=True,
                            values=(inline_values(inline),) if inline else ())

    def _values_from(self, value: object) -> tuple[ValuesReference, ...]:
        if not isinstance(value, dict) or value.get("valuesFrom") is None:
            return ()  # spec.helm's own problems are reported by _helm
        entries = value["valuesFrom"]
        if not isinstance(entries, list):
            raise ValueError("valuesFrom: must be a list of {kind: ConfigMap|Secret, name, valuesKey, optional}")
        references = []
        for index, entry in enumerate(entries):
            where = f"valuesFrom[{index}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: must be {{kind: ConfigMap|Secret, name, valuesKey, optional}}")
            unknown = [key for key in entry if key not in VALUES_FROM_FIELDS]
            if unknown:
                raise ValueError(f"{where}: unknown field {unknown[0]!r}; expected one of "
                                 f"{', '.join(VALUES_FROM_FIELDS)}")
            if entry.get("kind") not in ("ConfigMap", "Secret"):
                raise ValueError(f"{where}.kind: {entry.get('kind')!r} is not ConfigMap or Secret")
            key = entry.get("valuesKey", DEFAULT_VALUES_KEY)
            if not isinstance(key, str) or not key:
                raise ValueError(f"{where}.valuesKey: must be a non-empty string")
            optional = entry.get("optional", False)
            if not isinstance(optional, bool):
                raise ValueError(f"{where}.optional: {optional!r} is not true or false")
            name = entry.get("name")
            if not isinstance(name, str) or not _is_subdomain(name):
                raise ValueError(f"{where}.name: {name!r} is not the name of a {entry['kind']} (a DNS-1123 subdomain)")
            references.append(ValuesReference(kind=entry["kind"], name=name, key=key, optional=optional))
        return tuple(references)

    def _ignore(self) -> tuple[IgnoreRule, ...]:
        raw = self.spec.get("ignoreDifferences")
        if raw is None:
            return ()
        try:
            return tuple(parse_ignore_rules(raw, where="spec"))
        except ConfigError as error:
            self.problems.append(str(error))
            return ()

    def _repo(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a Git URL" + (" or an absolute local path" if self.policy.allow_local_repos else ""))
        try:
            reject_unsafe(value)
            local = parse_url(value).transport == "file" if looks_like_url(value) else None
        except ConfigError as error:
            raise ValueError(str(error)) from None
        if local is None and not Path(value).is_absolute():
            raise ValueError(f"{value!r} is neither a URL nor an absolute path (an App has no directory to be "
                             "relative to)")
        if local is not False:
            self._check_local(value)
        return value

    def _check_local(self, value: str) -> None:
        """A repository on the daemon's disk: only when the operator allows them, and never
        the daemon's private directories (checked on the path as written and as resolved,
        so neither '..' nor a symbolic link reaches them)."""
        if not self.policy.allow_local_repos:
            raise ValueError(f"{value!r} is on the daemon's own disk: local paths and file:// URLs are refused "
                             "unless the operator runs `syncer run --allow-local-repos`")
        path = unquote(urlsplit(value).path) if "://" in value else value
        written = Path(os.path.normpath(path))
        privates = {form for private in self.policy.private_dirs for form in (private, private.resolve())}
        for candidate in (written, written.resolve()):
            for private in privates:
                if candidate == private or private in candidate.parents or candidate in private.parents:
                    raise ValueError(f"{value!r} is, holds or is inside a private directory of the daemon (its Git "
                                     "cache or credentials), which no App may read")

    def _notification(self, value: object) -> Notification:
        if not isinstance(value, dict):
            raise ValueError("must be {url: ..., secretRef: {name: ..., key: ...}}")
        url = value.get("url")
        if not isinstance(url, str):
            raise ValueError(f"url: {url!r} is not an http:// or https:// URL")
        try:
            check_target(url, self.policy.notify_allow)
        except TargetRefused as refused:
            raise ValueError(f"url: {refused}") from None
        raw_secret = value.get("secretRef")
        if raw_secret is None:
            return Notification(url=url)
        secret = SecretKeyRef(name=_secret_name(raw_secret))
        key = raw_secret.get("key")
        if key is not None:
            if not isinstance(key, str) or not key:
                raise ValueError("secretRef.key: must be a non-empty string")
            secret = replace(secret, key=key)
        return Notification(url=url, secret=secret)


def _dns_subdomain(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 253 or not all(
        _is_label(part) for part in value.split(".")
    ):
        raise ValueError(f"{value!r} is not a valid service account name (a DNS-1123 subdomain)")
    return value


def _is_subdomain(value: str) -> bool:
    try:
        _dns_subdomain(value)
    except ValueError:
        return False
    return True


def _is_label(part: str) -> bool:
    try:
        _dns_label(part)
    except ValueError:
        return False
    return True


def _decryption(value: object) -> str:
    """`spec.decryption` (Flux's shape): `{provider: sops, secretRef: {name}}`."""
    if not isinstance(value, dict) or value.get("provider", "sops") != "sops":
        raise ValueError("must be {provider: sops, secretRef: {name: <a Secret of age keys in the App's namespace>}}")
    unknown = [key for key in value if key not in ("provider", "secretRef")]
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; expected provider and secretRef")
    try:
        return _secret_name(value.get("secretRef"))
    except ValueError as error:
        raise ValueError(f"secretRef: {error}") from None


def _secret_name(value: object) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError("must be {name: <a Secret in the App's namespace>}")
    return _dns_subdomain(value["name"])


__all__ = [
    "API_VERSION", "AppSpec", "InvalidApp", "KIND", "Notification", "PRUNE_FINALIZER", "RECONCILE_ANNOTATION",
    "SecretKeyRef", "TenantPolicy", "ValuesReference", "app_ref", "app_spec",
]


def _approval(value: object) -> bool:
    """`spec.approval`: `auto` (the default) or `manual`; True for manual."""
    if value not in ("auto", "manual"):
        raise ValueError(f"{value!r}: must be auto or manual")
    return value == "manual"


def _digest(value: object) -> str:
    """`spec.approvedPlan`: a plan's digest, as `syncer approve` writes it."""
    if not isinstance(value, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise ValueError(f"{value!r}: must be a plan digest (sha256:<64 hex digits>), as syncer approve writes it")
    return value
