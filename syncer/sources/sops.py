"""SOPS: manifests encrypted with Mozilla SOPS are decrypted after rendering, in memory.

As Flux's kustomize-controller does, any rendered document that carries SOPS metadata (a
top-level `sops` mapping with a `mac`) is decrypted with the pinned `sops` command
(tools/sops) before it is planned. The age identities come from the caller: a key file for the
CLI, a Secret in the App's namespace (read with the App's own credentials) for the daemon.

Nothing decrypted touches the disk: the document goes to `sops` on stdin and comes back on
stdout, the identities go in the environment (`SOPS_AGE_KEY`), and the render cache keeps the
encrypted form (decryption runs after it). The MAC covers every value of the document as it
was encrypted: the namespace syncer fills in is taken out for sops, while a change Kustomize
makes (a namespace, a name prefix, labels) fails the MAC, unless the file was encrypted with
`--mac-only-encrypted`. `sops` runs with an empty environment and HOME, so
it uses no key of the machine it runs on, and only age recipients are left in the document's
metadata: a repository cannot make syncer call a KMS, Vault or keyserver address it chose (the
MAC covers the values, not the list of recipients, so removing the others changes nothing else).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from syncer.errors import Problem, RenderError
from syncer.model import Manifest, Object
from syncer.sources.tool import find_tool
from syncer.sources.validate import decrypted_secret_problems, is_encrypted

SOPS_ENV = "SYNCER_SOPS"
SOPS_VERSION = "v3.13.3"
"""The sops syncer is tested with, pinned in tools/sops and built by `tools/build.sh sops`."""
TIMEOUT_SECONDS = 30.0
EXIT_NO_MATCHING_KEY = 128
"""sops' exit status when no identity given can open the file's data key."""


class SopsUnavailable(Exception):
    """The `sops` command was not found."""


@dataclass(frozen=True)
class AgeIdentities:
    """Age secret keys (`AGE-SECRET-KEY-1...`), as age-keygen writes them, one per line;
    `source` names where they came from for messages (a file, `Secret/ns/name`)."""

    text: str = field(repr=False)
    source: str

    @classmethod
    def from_texts(cls, texts: Sequence[str], *, source: str) -> AgeIdentities:
        keys = [line.strip() for text in texts for line in text.splitlines()
                if line.strip().startswith("AGE-SECRET-KEY-")]
        return cls(text="\n".join(keys), source=source)

    def __bool__(self) -> bool:
        return bool(self.text)


def encrypted_manifests(manifests: Sequence[Manifest]) -> list[Manifest]:
    return [m for m in manifests if is_encrypted(m.obj)]


def decrypt(manifests: Sequence[Manifest], *, identities: AgeIdentities | None) -> list[Manifest]:
    """`manifests`, each encrypted one decrypted. Raises RenderError naming every document
    that could not be (no identities given, none of them a recipient, a tampered MAC)."""
    encrypted = encrypted_manifests(manifests)
    if not encrypted:
        return list(manifests)
    if not identities:
        raise RenderError([Problem(str(m.origin), f"{m.ref} is encrypted with SOPS and no age key was given "
                                   "(--sops-age-key-file, or the App's spec.decryption.secretRef)")
                           for m in encrypted])
    command = sops_command()
    problems: list[Problem] = []
    decrypted: dict[int, Manifest] = {}
    with tempfile.TemporaryDirectory(prefix="syncer-sops-") as home:
        for manifest in encrypted:
            try:
                obj = _decrypt_one(as_written(manifest), command=command, identities=identities, home=home)
            except _Failed as failure:
                problems.append(Problem(str(manifest.origin), f"{manifest.ref}: {failure}"))
                continue
            if manifest.namespace_defaulted:
                obj = {**obj, "metadata": {**obj["metadata"], "namespace": manifest.obj["metadata"]["namespace"]}}
            found = decrypted_secret_problems(obj, ref=manifest.ref.qualified(), where=str(manifest.origin))
            if found:
                problems += found
                continue
            decrypted[id(manifest)] = replace(manifest, obj=obj, decrypted=True)
    if problems:
        raise RenderError(problems)
    return [decrypted.get(id(m), m) for m in manifests]


def as_written(manifest: Manifest) -> Object:
    """The document as its file has it: the MAC covers every value, so the namespace the
    render filled in is taken out again (and put back after)."""
    if not manifest.namespace_defaulted:
        return manifest.obj
    metadata = {k: v for k, v in manifest.obj["metadata"].items() if k != "namespace"}
    return {**manifest.obj, "metadata": metadata}


def sops_command() -> str:
    """`SYNCER_SOPS`, else `sops` on PATH, else the build `tools/build.sh sops` caches."""
    try:
        found = find_tool("sops", version=SOPS_VERSION)
    except ValueError as error:
        raise RenderError([Problem("sops", str(error))]) from None
    if found is None:
        raise RenderError([Problem("sops", "the manifests hold SOPS-encrypted documents, which need the `sops` command: "
                                   f"put it on PATH, set {SOPS_ENV}, or build sops {SOPS_VERSION} with "
                                   "tools/build.sh sops")])
    return found


class _Failed(Exception):
    pass


def _decrypt_one(obj: Object, *, command: str, identities: AgeIdentities, home: str) -> Object:
    document = json.dumps(age_recipients_only(obj)).encode()
    environment = {"HOME": home, "PATH": "/usr/bin:/bin", "SOPS_AGE_KEY": identities.text}
    try:
        done = subprocess.run([command, "--decrypt", "--input-type", "json", "--output-type", "json", "/dev/stdin"],
                              input=document, capture_output=True, env=environment, timeout=TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise _Failed(f"sops did not finish within {TIMEOUT_SECONDS:.0f}s") from None
    except OSError as error:
        raise _Failed(f"cannot run {command}: {error.strerror}") from None
    if done.returncode == EXIT_NO_MATCHING_KEY:
        raise _Failed(f"none of the age keys from {identities.source} can decrypt it "
                      f"(recipients: {', '.join(_recipients(obj)) or 'no age recipient'})")
    if done.returncode != 0:
        # sops' own message names what failed (a MAC mismatch, a malformed document); it never
        # holds the plaintext.
        message = " ".join(done.stderr.decode(errors="replace").split())[:500]
        raise _Failed(f"sops could not decrypt it (exit status {done.returncode}): {message}")
    result = json.loads(done.stdout)
    if not isinstance(result, dict):
        raise _Failed("sops returned something other than an object")
    return result


MASTER_KEY_TYPES = ("kms", "gcp_kms", "azure_kv", "hc_vault", "pgp", "age")


def age_recipients_only(obj: Object) -> Object:
    """`obj` with every master key but age's removed from its SOPS metadata."""
    metadata: dict[str, Any] = dict(obj["sops"])
    for kind in MASTER_KEY_TYPES:
        if kind != "age":
            metadata.pop(kind, None)
    if isinstance(metadata.get("key_groups"), list):
        metadata["key_groups"] = [{"age": group.get("age") or []} for group in metadata["key_groups"]
                                  if isinstance(group, dict)]
    return {**obj, "sops": metadata}


def _recipients(obj: Object) -> list[str]:
    metadata = obj.get("sops") or {}
    entries = list(metadata.get("age") or [])
    for group in metadata.get("key_groups") or []:
        if isinstance(group, dict):
            entries.extend(group.get("age") or [])
    return [str(e.get("recipient")) for e in entries if isinstance(e, dict) and e.get("recipient")]
