"""Decoding YAML and JSON files into documents, with limits that make hostile input fail fast.

Why not plain `yaml.safe_load_all`:

* An alias is a reference, so PyYAML builds a "billion laughs" document in linear memory,
  but everything downstream (validation, JSON encoding, diffing) walks the expanded tree.
  Merge keys (`<<: [*a, *a]`) are worse: PyYAML copies them while constructing, so a few
  dozen aliases allocate exponentially before any object exists. The composer here counts
  every node an alias stands for, against a budget for the whole render, and stops at the
  first alias that would exceed it, before construction starts.
* libyaml's composer recurses in C and crashes the interpreter on deeply nested input
  (`[[[[...`); this one keeps its own stack and enforces a depth limit.
* Timestamps stay strings, as Kubernetes' own YAML decoding leaves them, so that an
  annotation such as `released: 2024-05-01` round-trips unchanged.
* Duplicate keys are reported (PyYAML silently keeps the last one; the API server's strict
  field validation rejects them).

libyaml still does the scanning and parsing (`CSafeLoader` when available).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from syncer.errors import Problem

MiB = 1024 * 1024
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class RenderLimits:
    """Bounds for one render; the defaults are far above any real set of manifests."""

    max_file_bytes: int = 10 * MiB
    max_total_bytes: int = 100 * MiB
    """All files read plus Kustomize output."""
    max_documents: int = 20_000
    max_nodes: int = 5_000_000
    """YAML nodes in the whole render, each alias counting as the size of what it refers to."""
    max_depth: int = 256
    kustomize_timeout: float = 120.0
    """Seconds one `kustomize build` may take."""


class LimitExceeded(Exception):
    """A render limit was hit; rendering stops at once rather than reading further."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


@dataclass
class Budget:
    """What is left of the limits while one render reads its inputs."""

    limits: RenderLimits
    bytes: int = 0
    documents: int = 0
    nodes: int = 0

    def add_bytes(self, count: int, *, where: str) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_total_bytes:
            raise LimitExceeded(
                Problem(where, f"the render reads more than {self.limits.max_total_bytes} bytes in total; render a narrower --path")
            )

    def add_document(self, *, where: str) -> None:
        self.documents += 1
        if self.documents > self.limits.max_documents:
            raise LimitExceeded(
                Problem(where, f"more than {self.limits.max_documents} documents in one render; render a narrower --path")
            )

    def add_nodes(self, count: int, *, file: str, line: int) -> None:
        self.nodes += count
        if self.nodes > self.limits.max_nodes:
            raise LimitExceeded(
                Problem(
                    f"{file}:{line}",
                    f"more than {self.limits.max_nodes} YAML nodes with aliases expanded "
                    "(an alias bomb?); rejected without expanding it",
                )
            )


@dataclass(frozen=True)
class Document:
    """One non-empty document of a file and where it starts."""

    obj: Any
    index: int
    """Position in the file's stream of documents, counting empty ones, from 0."""
    line: int
    """1-based line of the document's first node."""
    item_lines: tuple[int, ...] = ()
    """For a mapping with an `items` sequence (a `kind: List`), the line of each item."""
    value_lines: dict[tuple[int | None, str, str], int] = field(default_factory=dict)
    """For Secrets, the line of each `data`/`stringData` entry: (item number in a List or
    None, field, key) -> line, so that a bad value is reported where it is written."""


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader, with timestamps kept as the strings they were written as."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


class _ComposeError(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


@dataclass
class _Open:
    """A sequence or mapping whose end event has not been seen yet."""

    node: SequenceNode | MappingNode
    anchor: str | None
    size: int = 1
    key: Node | None = None
    keys: dict[Any, int] = field(default_factory=dict)


def load_yaml(data: bytes, *, file: str, budget: Budget) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of a YAML stream; a syntax error ends the file.

    Raises LimitExceeded when the render's budget runs out.
    """
    documents: list[Document] = []
    problems: list[Problem] = []
    loader = _Loader(data)
    line = 1
    try:
        loader.get_event()  # StreamStartEvent
        index = 0
        while not loader.check_event(StreamEndEvent):
            loader.get_event()  # DocumentStartEvent
            root = _compose(loader, file=file, budget=budget, problems=problems)
            loader.get_event()  # DocumentEndEvent
            line = root.start_mark.line + 1
            obj = _construct(loader, root, where=f"{file}:{line}")
            if obj is not None:
                budget.add_document(where=f"{file}:{line}")
                documents.append(Document(obj=obj, index=index, line=line, item_lines=_item_lines(root),
                                          value_lines=_secret_value_lines(root)))
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{file}:{mark.line + 1}" if mark is not None else file
        depth = flow_depth(data, end=mark.index) if mark is not None else 0
        if depth > budget.limits.max_depth:
            # libyaml's scanner reads ahead of the events and, since PyYAML 6.0.4, stops at its
            # own depth limit before the composer sees level 257: the limit is syncer's, and
            # so is its message, whichever libyaml is installed.
            problems.append(Problem(where, f"invalid YAML: nested more than {budget.limits.max_depth} levels deep"))
        else:
            problems.append(Problem(where, f"invalid YAML: {_yaml_message(error)}"))
    except yaml.YAMLError as error:
        problems.append(Problem(file, f"invalid YAML: {error}"))
    except _ComposeError as error:
        problems.append(Problem(f"{file}:{error.line}", f"invalid YAML: {error.message}"))
    except _ConstructError as error:
        problems.append(Problem(error.where, f"cannot decode the document: {error.message}"))
    finally:
        loader.dispose()
    return documents, problems


def load_json(data: bytes, *, file: str, budget: Budget) -> tuple[list[Document], list[Problem]]:
    """A JSON file holds one document (JSON has no aliases, so the byte limit bounds it)."""
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as error:
        return [], [Problem(f"{file}:{error.lineno}", f"invalid JSON: {error.msg} (column {error.colno})")]
    except (ValueError, RecursionError) as error:
        return [], [Problem(file, f"invalid JSON: {error}")]
    if obj is None:
        return [], []
    budget.add_document(where=f"{file}:1")
    return [Document(obj=obj, index=0, line=1)], []


def _compose(loader: _Loader, *, file: str, budget: Budget, problems: list[Problem]) -> Node:
    """One document's node graph, built with an explicit stack (see the module docstring)."""
    limits = budget.limits
    anchors: dict[str, tuple[Node, int]] = {}
    open_anchors: set[str] = set()
    stack: list[_Open] = []
    while True:
        event = loader.get_event()
        # The stubs type marks as one of two Mark classes; nodes accept either at runtime.
        start_mark: Any = event.start_mark
        end_mark: Any = event.end_mark
        line = start_mark.line + 1
        node: Node
        if isinstance(event, AliasEvent):
            anchor = event.anchor or ""
            found = anchors.get(anchor)
            if found is None:
                what = "refers to a node that contains it" if anchor in open_anchors else "is not defined"
                raise _ComposeError(line, f"alias *{anchor} {what}")
            node, size = found
            budget.add_nodes(size, file=file, line=line)
        elif isinstance(event, ScalarEvent):
            tag = event.tag if event.tag not in (None, "!") else loader.resolve(ScalarNode, event.value, event.implicit)
            node, size = ScalarNode(tag, event.value, start_mark, end_mark, style=event.style), 1
            budget.add_nodes(1, file=file, line=line)
            if event.anchor is not None:
                anchors[event.anchor] = (node, size)
        elif isinstance(event, (SequenceStartEvent, MappingStartEvent)):
            if len(stack) >= limits.max_depth:
                raise _ComposeError(line, f"nested more than {limits.max_depth} levels deep")
            kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
            tag = event.tag if event.tag not in (None, "!") else loader.resolve(kind, None, event.implicit)
            budget.add_nodes(1, file=file, line=line)
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            stack.append(_Open(kind(tag, [], start_mark, end_mark, flow_style=event.flow_style), event.anchor))
            continue
        elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            done = stack.pop()
            node, size = done.node, done.size
            node.end_mark = end_mark
            if done.anchor is not None:
                open_anchors.discard(done.anchor)
                anchors[done.anchor] = (node, size)
        else:
            raise _ComposeError(line, f"unexpected {type(event).__name__}")
        if not stack:
            return node
        parent = stack[-1]
        parent.size += size
        if isinstance(parent.node, SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
            _check_duplicate_key(parent, node, file=file, problems=problems)
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None


def _check_duplicate_key(mapping: _Open, key: Node, *, file: str, problems: list[Problem]) -> None:
    if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
        return
    line = key.start_mark.line + 1
    first = mapping.keys.get(key.value)
    if first is None:
        mapping.keys[key.value] = line
    else:
        problems.append(
            Problem(f"{file}:{line}", f"duplicate key {key.value!r} (first at line {first}); remove one of them")
        )


class _ConstructError(Exception):
    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(message)


def _construct(loader: _Loader, root: Node, *, where: str) -> Any:
    """The Python value of a composed document; bad explicit tags (`!!int abc`) become problems."""
    try:
        return loader.construct_document(root)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, OverflowError, IndexError):
        # PyYAML's messages quote the value (`invalid literal for int(): 'hunter2'`), which may
        # be a Secret's; an empty `!!int ` raises IndexError.
        raise _ConstructError(where, "a value does not fit its explicit tag (!!int, !!float, ...)") from None


def _item_lines(root: Node) -> tuple[int, ...]:
    if not isinstance(root, MappingNode):
        return ()
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value == "items" and isinstance(value, SequenceNode):
            return tuple(item.start_mark.line + 1 for item in value.value)
    return ()


def _secret_value_lines(root: Node) -> dict[tuple[int | None, str, str], int]:
    lines: dict[tuple[int | None, str, str], int] = {}
    items = _mapping_value(root, "items")
    mappings: list[tuple[int | None, Node]] = [(None, root)]
    if isinstance(items, SequenceNode):
        mappings += list(enumerate(items.value))
    for number, mapping in mappings:
        kind = _mapping_value(mapping, "kind")
        if not isinstance(kind, ScalarNode) or kind.value != "Secret":
            continue
        for field_name in ("data", "stringData"):
            values = _mapping_value(mapping, field_name)
            if isinstance(values, MappingNode):
                for key, value in values.value:
                    if isinstance(key, ScalarNode):
                        lines[(number, field_name, key.value)] = value.start_mark.line + 1
    return lines


def _mapping_value(node: Node, name: str) -> Node | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == name:
                found: Node = value
                return found
    return None

def flow_depth(data: bytes, *, end: int) -> int:
    """The deepest nesting of flow collections (`[`, `{`) in the first `end` characters,
    outside quoted scalars and comments: how deep the input goes where a parser gave up."""
    text = data.decode("utf-8", "replace")[:end]
    depth = deepest = 0
    quote = ""
    previous = "\n"
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t\n":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            previous = "\n"
            continue
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
        index += 1
    return deepest


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    parts = [part for part in (error.context, error.problem) if part]
    return ", ".join(parts) or str(error)
