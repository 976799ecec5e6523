"""A set's files as every tool gets them, and the objects they define (read back after each
command). syncer's own rendering says which objects a set defines: kubectl and kpt get the
same files and, where syncer fills in a namespace, the same namespace (`-n`)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.cluster import Refs
from conformance.sets import RECREATE, RealWorldSet
from syncer.errors import RenderError
from syncer.model import Manifest, ObjectRef
from syncer.sources import open_source, render, with_created_namespace


@dataclass(frozen=True)
class Source:
    """Where a set's files are (a copy when placeholders are substituted)."""

    repo: Path
    path: str

    def absolute(self) -> Path:
        return self.repo / self.path

    def is_kustomization(self) -> bool:
        target = self.absolute()
        return target.is_dir() and any((target / name).exists()
                                       for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"))


def prepare_source(corpus: Path, path: str, *, substitute: str | None, workdir: Path, recreate_jobs: bool = False) -> Source:
    """The set as given, or a copy with Flux's `%[1]s` replaced / Jobs opted in to recreate."""
    if substitute is None and not recreate_jobs:
        return Source(corpus, path)
    original = corpus / path
    copy_root = Path(tempfile.mkdtemp(prefix="set-", dir=workdir))
    files = [original] if original.is_file() else sorted(p for p in original.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(original.parent if original.is_file() else original)
        target = copy_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = file.read_text()
        if substitute is not None:
            text = text.replace("%[1]s", substitute)
        if recreate_jobs and file.suffix in (".yaml", ".yml"):
            text = _opt_in_jobs(text)
        target.write_text(text)
    return Source(copy_root, original.name if original.is_file() else ".")


def _opt_in_jobs(text: str) -> str:
    documents = list(yaml.safe_load_all(text))
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "Job":
            document.setdefault("metadata", {}).setdefault("annotations", {})[RECREATE] = "true"
    return yaml.safe_dump_all([d for d in documents if d is not None], sort_keys=False)


def rendered(source: Source, rw: RealWorldSet) -> list[Manifest]:
    """The set's objects as syncer renders them ([] when syncer refuses the input)."""
    try:
        manifests = render(open_source(str(source.repo)).fetch(), source.path, namespace=rw.namespace)
    except RenderError:
        return []
    return with_created_namespace(manifests, rw.namespace) if rw.create_namespace else manifests


def refs_of(manifests: list[Manifest]) -> Refs:
    return [(m.api_version, m.ref) for m in manifests]


def removed(previous: Refs, current: Refs) -> Refs:
    """What the previous input had and the current one has not."""
    kept = {ref for _, ref in current}
    return [(v, ref) for v, ref in previous if ref not in kept]


def union(*lists: Refs) -> Refs:
    return list({ref: (v, ref) for refs in lists for v, ref in refs}.values())


def namespace_args(source: Source, rw: RealWorldSet) -> list[str]:
    """kubectl's and kpt's `-n`, only where syncer fills in a namespace: both refuse an object
    naming another namespace than `-n`."""
    return ["-n", rw.namespace] if any(m.namespace_defaulted for m in rendered(source, rw)) else []


def flat_copy(source: Source, target: Path) -> None:
    """The set's YAML files in `target` (a kpt package), a kustomization built first with
    `kubectl kustomize` (kpt does not build kustomizations). What was in `target` before,
    other than kpt's inventory file, is removed."""
    for old in target.iterdir():
        if old.name == INVENTORY_FILE:
            continue
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    origin = source.absolute()
    if source.is_kustomization():
        built = subprocess.run(["kubectl", "kustomize", str(origin)], capture_output=True, text=True, check=False)
        (target / "kustomized.yaml").write_text(built.stdout)
        return
    files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.suffix in (".yaml", ".yml"))
    for file in files:
        relative = Path(file.name) if origin.is_file() else file.relative_to(origin)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target / relative)


INVENTORY_FILE = "resourcegroup.yaml"
"""kpt's inventory: the ResourceGroup `kpt live init` writes into the package."""


def app_name(rw: RealWorldSet) -> str:
    return rw.name.replace("/", "-").replace(".", "-").replace("_", "-").lower()[:40].strip("-")


def inventory_ref(rw: RealWorldSet, app: str) -> tuple[str, ObjectRef]:
    """syncer's ApplySet parent: a ConfigMap in the app's namespace."""
    return "v1", ObjectRef(group="", kind="ConfigMap", namespace=rw.namespace, name=f"syncer-{app}")
