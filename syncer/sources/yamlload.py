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
* Plain scalars resolve as Kubernetes resolves them (`syncer.sources.yamldialect`): a bare `=`
  is a string, `y` a boolean, `1:30` a string, a date stays the string it was written as (so
  an annotation such as `released: 2024-05-01` round-trips unchanged), and map keys, integral
  floats and NaN are made what they become in the JSON the API server reads.
* Duplicate keys are reported (PyYAML silently keeps the last one; the API server's strict
  field validation rejects them).

libyaml still does the scanning and parsing (`CSafeLoader` when available).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
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
from syncer.sources import yamldialect
from syncer.sources.limits import Budget, LimitExceeded, RenderLimits, object_count

_MERGE_TAG = yamldialect.MERGE_TAG


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
    """The safe loader, resolving and constructing scalars and keys as Kubernetes does."""

    def resolve(self, kind: type[Node], value: str | None, implicit: tuple[bool, bool] | bool) -> str:
        if kind is ScalarNode and isinstance(implicit, tuple) and implicit[0] and value is not None:
            return yamldialect.resolve_plain(value)[0]
        return str(super().resolve(kind, value, implicit))

    def construct_go_scalar(self, node: ScalarNode) -> Any:
        """A scalar tagged bool, int, float or null (implicitly or explicitly, `!!int 0x1F`):
        its value by Go's rules, which must agree with the tag (go-yaml refuses `!!int abc`)."""
        tag, value = yamldialect.resolve_plain(str(self.construct_scalar(node)))
        if tag == yamldialect.INT_TAG and node.tag == yamldialect.FLOAT_TAG:
            tag, value = node.tag, float(value)
        if tag != node.tag:
            line = node.start_mark.line + 1
            raise ValueError(f"line {line}: {node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}")
        if isinstance(value, float):
            try:
                return yamldialect.json_number(value)
            except ValueError as error:
                raise yaml.constructor.ConstructorError(None, None, str(error), node.start_mark) from None
        return value

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[str, Any]:
        """Keys as strings, as sigs.k8s.io/yaml writes them into JSON (`8443:` is "8443")."""
        self.flatten_mapping(node)  # merge keys (`<<: *base`)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == yamldialect.FLOAT_TAG and isinstance(key_node, ScalarNode):
                key = float(yamldialect.resolve_plain(key_node.value)[1])  # 1e6 is "1e+06", not "1000000"
            else:
                key = self.construct_object(key_node, deep=True)
            try:
                text = yamldialect.json_key(key)
            except ValueError as error:
                raise yaml.constructor.ConstructorError(None, None, str(error), key_node.start_mark) from None
            # Keys equal once converted (`16:`, `0x10:`) were reported while composing.
            mapping[text] = self.construct_object(value_node, deep=deep)
        return mapping


for _tag in (yamldialect.BOOL_TAG, yamldialect.INT_TAG, yamldialect.FLOAT_TAG, yamldialect.NULL_TAG):
    _Loader.add_constructor(_tag, _Loader.construct_go_scalar)
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
    list_kind: bool = False
    """The document's root mapping, once its `kind` was seen to be a List kind."""
    counts_objects: bool = False
    """The `items` of a List: each item is counted as an object as soon as it is complete."""


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
            root, counted = _compose(loader, file=file, budget=budget, problems=problems)
            loader.get_event()  # DocumentEndEvent
            line = root.start_mark.line + 1
            obj = _construct(loader, root, where=f"{file}:{line}")
            if obj is not None:
                budget.add_objects(object_count(obj) - counted, where=f"{file}:{line}")
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
    budget.add_objects(object_count(obj), where=f"{file}:1")
    return [Document(obj=obj, index=0, line=1)], []


def _compose(loader: _Loader, *, file: str, budget: Budget, problems: list[Problem]) -> tuple[Node, int]:
    """One document's node graph, built with an explicit stack (see the module docstring),
    and how many objects of it were counted already: the items of a List whose `kind` comes
    before its `items` (as it always does in practice), each as soon as it is complete, so a
    List of a million items stops at the first item past the bound. The caller counts the
    rest once the document is constructed."""
    limits = budget.limits
    counted = 0
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
            items = kind is SequenceNode and len(stack) == 1 and stack[0].list_kind and _is_key(stack[0].key, "items")
            stack.append(_Open(kind(tag, [], start_mark, end_mark, flow_style=event.flow_style), event.anchor,
                               counts_objects=items))
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
            return node, counted
        parent = stack[-1]
        parent.size += size
        if isinstance(parent.node, SequenceNode):
            parent.node.value.append(node)
            if parent.counts_objects:
                budget.add_objects(1, where=f"{file}:{node.start_mark.line + 1}")
                counted += 1
        elif parent.key is None:
            parent.key = node
            _check_duplicate_key(parent, node, file=file, problems=problems)
        else:
            if len(stack) == 1 and _is_key(parent.key, "kind") and isinstance(node, ScalarNode):
                parent.list_kind = str(node.value).endswith("List")
            parent.node.value.append((parent.key, node))
            parent.key = None


def _is_key(node: Node | None, name: str) -> bool:
    return isinstance(node, ScalarNode) and node.value == name


def _check_duplicate_key(mapping: _Open, key: Node, *, file: str, problems: list[Problem]) -> None:
    if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
        return
    line = key.start_mark.line + 1
    name = _key_name(key)
    first = mapping.keys.get(name)
    if first is None:
        mapping.keys[name] = line
    else:
        problems.append(
            Problem(f"{file}:{line}", f"duplicate key {name!r} (first at line {first}); remove one of them")
        )


def _key_name(key: ScalarNode) -> str:
    """The key as it ends up in JSON, so that `16:` and `0x10:` are found to be the same key."""
    if key.tag not in (yamldialect.BOOL_TAG, yamldialect.INT_TAG, yamldialect.FLOAT_TAG):
        return str(key.value)
    tag, value = yamldialect.resolve_plain(key.value)
    if tag != key.tag:
        return str(key.value)
    try:
        return yamldialect.json_key(yamldialect.json_number(value) if isinstance(value, float) else value)
    except ValueError:
        return str(key.value)  # refused when the document is constructed, with its reason


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


def read_mapping(path: Path) -> dict[str, Any]:
    """A small YAML file's top mapping ({} when it is not one, or unreadable: the tool that
    reads it for real reports the problem)."""
    limits = RenderLimits()
    try:
        data = path.read_bytes()[: limits.max_file_bytes]
    except OSError:
        return {}
    documents, _ = load_yaml(data, file=path.name, budget=Budget(limits))
    obj = documents[0].obj if documents else None
    return obj if isinstance(obj, dict) else {}
