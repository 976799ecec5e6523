"""`syncer render`: print the manifests a repository path renders to, as they would be applied.

Secret values are masked as in a diff (`<secret sha256:..., N bytes>`, salted per run) unless
`--show-secrets` is given: render output ends up in CI logs and terminals like any other.
"""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from syncer.cli import cli
from syncer.cli.options import SourceOptions, render_from_options, source_options
from syncer.diff.secrets import PROCESS_SALT, mask_secret
from syncer.errors import ConfigError
from syncer.kube import ClientOptions, default_namespace

_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    """Writes objects shared through YAML aliases out in full: readers of the output (kubectl,
    diff tools, people) should not have to resolve `&id001` references."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML, each document starting with `---`, keys in their original order."""
    return yaml.dump_all(
        objects, Dumper=_Dumper, sort_keys=False, explicit_start=True, allow_unicode=True, default_flow_style=False
    )


def _context_namespace() -> str:
    """The namespace diff and sync would default to, so that render shows what they apply;
    `default` when there is no usable kubeconfig (render needs no cluster)."""
    try:
        return default_namespace(ClientOptions())[0]
    except ConfigError:
        return "default"


@cli.command("render")
@source_options
@click.option("-o", "--output", "output_format", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True, help="Output format on stdout.")  # fmt: skip
@click.option("--show-secrets", is_flag=True,
              help="Print Secret values as they are (masked by default, in every format).")
def render_command(*, output_format: str, show_secrets: bool, **values: Any) -> None:
    """Render a repository path to the manifests syncer would apply (nothing is applied).

    Exits with status 2 and lists every problem when any manifest is invalid.
    """
    if not values.get("namespace"):
        values["namespace"] = _context_namespace()
    source = SourceOptions.from_values(values)
    snapshot, manifests = render_from_options(source)
    objects = [manifest.obj if show_secrets else mask_secret(manifest.obj, salt=PROCESS_SALT)
               for manifest in manifests]
    if output_format == "json":
        document = {"revision": snapshot.revision, "items": objects}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))
    elif objects:
        click.echo(dump_yaml(objects), nl=False)
    # The manifests are the result; this count is a note beside it, so that `> file` and `| kubectl
    # apply -f -` get the manifests alone.
    noun = "object" if len(objects) == 1 else "objects"
    click.echo(f"rendered {len(objects)} {noun} from {snapshot.repo} ({source.path}) at {snapshot.revision}", err=True)
