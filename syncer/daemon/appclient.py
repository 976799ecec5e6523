"""Reading and writing App objects and what they refer to, for the daemon and the CLI.

Every write names the App's uid, so that a request meant for an App never lands on a
namesake created after it was deleted: a merge patch carrying `metadata.uid` fails with 409
when the uid differs.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from syncer.apply.status import event_about
from syncer.daemon.appspec import API_VERSION, KIND, RECONCILE_ANNOTATION, ValuesReference
from syncer.errors import ConfigError, NotFound
from syncer.kube import Kube, Resource
from syncer.model import Object
from syncer.sources.auth import GitAuth
from syncer.sources.sops import AgeIdentities


def app_resource(kube: Kube) -> Resource:
    """The App resource; ConfigError naming the fix when its CRD is not installed."""
    try:
        return kube.resource_for(API_VERSION, KIND)
    except NotFound:
        raise ConfigError(
            f"the API server at {kube.server} does not serve {KIND} ({API_VERSION}): install its "
            "CustomResourceDefinition with `kubectl apply -f examples/deploy/crd.yaml` "
            "(or `kubectl apply -k examples/deploy`)"
        ) from None


def subject(namespace: str, name: str) -> str:
    return f"{KIND}/{namespace}/{name}"


def read_app(kube: Kube, *, namespace: str, name: str) -> Object:
    live = kube.get(app_resource(kube), name, namespace=namespace)
    if live is None:
        raise ConfigError(f"{subject(namespace, name)}: not found")
    return live


def patch_status(kube: Kube, resource: Resource, app: Object, status: dict[str, Any]) -> Object:
    """Replace the App's status with `status`, whole (through the status subresource, so that
    it needs no right to change the spec).

    A JSON patch, not a merge patch: a merge patch merges nested maps, so a field the new
    status no longer has (`lastSync.error` after a success) stayed, and counts of different
    syncs added up in `lastSync.summary`. The stored status then never equalled the computed
    one, and an idle App was written on every interval. The `test` of the uid makes the patch
    apply only to this very App, not to one created since under its name."""
    metadata = app["metadata"]
    path = resource.path(namespace=metadata["namespace"], name=metadata["name"]) + "/status"
    result = kube.request(
        "PATCH", path, subject=subject(metadata["namespace"], metadata["name"]), verb="patch",
        body=[{"op": "test", "path": "/metadata/uid", "value": metadata["uid"]},
              {"op": "add", "path": "/status", "value": status}],
        content_type="application/json-patch+json",
    )
    assert isinstance(result, dict)
    return result


def patch_app(kube: Kube, app: Object, patch: dict[str, Any]) -> Object:
    """A merge patch of the App's metadata or spec, guarded by its uid (and, when the patch
    names one, its resourceVersion)."""
    metadata = app["metadata"]
    body = {**patch, "metadata": {**patch.get("metadata", {}), "uid": metadata["uid"]}}
    return kube.merge_patch(app_resource(kube), metadata["name"], body, namespace=metadata["namespace"],
                            subject=subject(metadata["namespace"], metadata["name"]))


def request_reconcile(kube: Kube, app: Object) -> str:
    """Ask the daemon for a sync now; returns the annotation's new value."""
    value = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch_app(kube, app, {"metadata": {"annotations": {RECONCILE_ANNOTATION: value}}})
    return value


def secret_data(kube: Kube, *, namespace: str, name: str) -> dict[str, bytes]:
    """A Secret's data, decoded; ConfigError when it does not exist."""
    secret = kube.get(kube.resource_for("v1", "Secret"), name, namespace=namespace)
    if secret is None:
        raise ConfigError(f"Secret/{namespace}/{name}: not found")
    return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}


AGE_KEY_SUFFIX = ".agekey"
"""Flux's convention: each key of the decryption Secret that ends so holds age identities."""


def age_identities(kube: Kube, *, namespace: str, secret: str) -> AgeIdentities:
    """The age identities of an App's decryption Secret (`spec.decryption.secretRef`), read
    with `kube`: the App's identity, as its Git credentials are. Kept in memory only."""
    data = secret_data(kube, namespace=namespace, name=secret)
    texts = [value.decode(errors="replace") for key, value in sorted(data.items()) if key.endswith(AGE_KEY_SUFFIX)]
    identities = AgeIdentities.from_texts(texts, source=f"Secret/{namespace}/{secret}")
    if not identities:
        raise ConfigError(f"Secret/{namespace}/{secret}: has no key ending in {AGE_KEY_SUFFIX} holding an age "
                          "identity (AGE-SECRET-KEY-1..., as age-keygen writes it) (spec.decryption.secretRef)")
    return identities


def helm_values(kube: Kube, *, namespace: str, references: tuple[ValuesReference, ...]) -> tuple[str, ...]:
    """A chart's values from ConfigMaps and Secrets of the App's namespace (`spec.helm.valuesFrom`),
    in order, read with `kube`: the App's identity, as its Git credentials are, so an App reads
    only what its service account may read. Read afresh at every sync. Each must be a YAML
    mapping of values; a missing object or key is an error naming it unless `optional`."""
    documents = []
    for reference in references:
        subject = f"{reference.kind}/{namespace}/{reference.name}"
        if reference.kind == "Secret":
            found = kube.get(kube.resource_for("v1", "Secret"), reference.name, namespace=namespace)
            data = {key: base64.b64decode(value) for key, value in ((found or {}).get("data") or {}).items()}
        else:
            found = kube.get(kube.resource_for("v1", "ConfigMap"), reference.name, namespace=namespace)
            data = {key: value.encode() for key, value in ((found or {}).get("data") or {}).items()}
        if found is None or reference.key not in data:
            if reference.optional:
                continue
            missing = "not found" if found is None else f"has no key {reference.key}"
            raise ConfigError(f"{subject}: {missing} (spec.helm.valuesFrom; mark it optional: true if it may be "
                              "missing)")
        text = data[reference.key].decode(errors="replace")
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{subject} key {reference.key}{line}: not valid YAML (spec.helm.valuesFrom)") from None
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{subject} key {reference.key}: not a mapping of chart values (spec.helm.valuesFrom)")
        documents.append(text)
    return tuple(documents)


def git_auth(kube: Kube, *, namespace: str, secret: str, directory: Path) -> GitAuth:
    """Git credentials from an App's Secret (`spec.secretRef`), read with `kube`: the App's
    identity, so an App reads only a Secret its service account may read. Written as private
    files in `directory` (0700, each file 0600), never passed in arguments or the environment.
    Read afresh at each call, so a rotated Secret is used at the next sync; the daemon and
    `syncer sync --app` both read it here."""
    data = secret_data(kube, namespace=namespace, name=secret)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths: dict[str, Path] = {}
    for key in ("password", "identity", "known_hosts"):
        if key in data:
            path = paths[key] = directory / key
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data[key])
    if not paths:
        raise ConfigError(f"Secret/{namespace}/{secret}: has no key password (https, with an optional "
                          "username) or identity (ssh, with known_hosts)")
    username = data.get("username")
    return GitAuth(ssh_key_file=paths.get("identity"), known_hosts_file=paths.get("known_hosts"),
                   username=username.decode() if username else None, token_file=paths.get("password"))


def emit_app_event(kube: Kube, app: Object, *, reason: str, message: str, warning: bool, instance: str) -> None:
    """A core/v1 Event about the App, so `kubectl describe app` tells its recent history."""
    metadata = app["metadata"]
    event = event_about({**app, "apiVersion": API_VERSION, "kind": KIND}, reason=reason, message=message,
                        warning=warning, instance=instance)
    kube.create(kube.resource_for("v1", "Event"), event,
                subject=f"Event about {subject(metadata['namespace'], metadata['name'])}")
