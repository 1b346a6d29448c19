"""YAML to located values: every scalar, list and mapping keeps its file, line and column.

Only the safe YAML subset is read: no tags beyond the standard ones, so no YAML construct can run
code. Anchors and aliases work, within a budget of nodes (composed, then visited) that stops huge files and
alias bombs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from macrowatch.config.problems import Loc, Problems

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")  # "\0" and "\ud800" escapes: no file name or output holds them


@dataclass
class YNode:
    """A located YAML value: `value` is a Python scalar, a list of YNode, or a dict str -> YNode."""

    value: Any
    loc: Loc
    keys: dict[str, Loc] = field(default_factory=dict)  # for mappings: where each key stands

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not (self.is_map or self.is_list)


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_NODES


class _TooLarge(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops composing after MAX_NODES nodes: a file of millions of values (under the size
    limit) fails in seconds, instead of taking a minute of CPU and a gigabyte of nodes first."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.nodes_left = MAX_NODES

    def compose_node(self, parent, index):
        self.nodes_left -= 1
        if self.nodes_left < 0:
            raise _TooLarge()
        return super().compose_node(parent, index)


def _loc(name: str, node: yaml.Node) -> Loc:
    return Loc(name, node.start_mark.line + 1, node.start_mark.column + 1)


def load_file(path: Path, problems: Problems, display: str | None = None) -> YNode | None:
    """Read one YAML file; report syntax and structure problems; None when nothing usable."""
    name = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.error(Loc(name), f"cannot read file: {exc.strerror or exc}")
        return None
    if len(raw) > MAX_FILE_BYTES:
        problems.error(Loc(name), f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.error(Loc(name), f"file is not UTF-8 text (byte {exc.start})")
        return None
    return load_text(text, name, problems)


def load_text(text: str, name: str, problems: Problems) -> YNode | None:
    """Parse YAML text into a YNode tree, or report why not."""
    try:
        docs = list(yaml.compose_all(text, Loader=_Loader))
    except _TooLarge:
        problems.error(Loc(name, 1, 1), f"document has more than {MAX_NODES} values")
        return None
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (NUL, controls): where it stands
        at = exc.position
        loc = Loc(name, text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at))
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        problems.error(loc, f"YAML syntax error: character {what} is not allowed ({exc.reason})")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Loc(name, mark.line + 1, mark.column + 1) if mark else Loc(name)
        what = exc.problem or exc.context or "invalid YAML"
        cm = exc.context_mark
        if exc.problem and exc.context and cm and mark and (cm.line, cm.column) != (mark.line, mark.column):
            what += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"  # where the mistake is
        problems.error(loc, f"YAML syntax error: {what}")
        return None
    except yaml.YAMLError as exc:
        problems.error(Loc(name), f"YAML error: {' '.join(str(exc).split())}")  # one line, as every error
        return None
    except RecursionError:
        problems.error(Loc(name), "YAML is nested too deeply")
        return None
    docs = [d for d in docs if d is not None]
    if not docs:
        problems.error(Loc(name, 1, 1), "file is empty: expected a mapping of config keys")
        return None
    if len(docs) > 1:
        problems.error(_loc(name, docs[1]), "a config file holds one YAML document, found several")
        return None
    try:
        return _convert(docs[0], name, problems, _Budget(), 0)
    except _TooLarge:
        problems.error(_loc(name, docs[0]), f"document expands to more than {MAX_NODES} values "
                                            "(aliases repeated too often?)")
        return None
    except RecursionError:
        problems.error(_loc(name, docs[0]), "YAML is nested too deeply")
        return None


def _convert(node: yaml.Node, name: str, problems: Problems, budget: _Budget, depth: int) -> YNode:
    budget.left -= 1
    if budget.left < 0:
        raise _TooLarge()
    if depth > 64:
        raise RecursionError()
    loc = _loc(name, node)
    if node.tag not in _STANDARD_TAGS:
        problems.unreadable_value(loc, f"unsupported YAML tag {node.tag!r}")
        return YNode(None, loc)
    if isinstance(node, yaml.ScalarNode):
        return YNode(_scalar(node, loc, problems), loc)
    if isinstance(node, yaml.SequenceNode):
        return YNode([_convert(n, name, problems, budget, depth + 1) for n in node.value], loc)
    return _mapping(node, name, problems, budget, depth, loc)


def _mapping(node: yaml.MappingNode, name: str, problems: Problems, budget: _Budget, depth: int,
             loc: Loc) -> YNode:
    out = YNode({}, loc)
    merged: list[YNode] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            src = _convert(value_node, name, problems, budget, depth + 1)
            sources = src.value if src.is_list else [src]
            for s in sources:
                if s.is_map:
                    merged.append(s)
                else:
                    problems.error(s.loc, "'<<' merges mappings only")
            continue
        key_loc = _loc(name, key_node)
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _STANDARD_TAGS:
            problems.error(key_loc, "mapping keys must be plain strings")
            continue
        key = key_node.value
        if key in out.value:
            problems.error(key_loc, f"duplicate key {key!r} (first at line {out.keys[key].line})")
            continue
        out.value[key] = _convert(value_node, name, problems, budget, depth + 1)
        out.keys[key] = key_loc
    for m in merged:  # explicit keys win over merged ones, as in YAML's merge key
        for key, value in m.value.items():
            if key not in out.value:
                out.value[key] = value
                out.keys[key] = m.keys[key]
    return out


def _scalar(node: yaml.ScalarNode, loc: Loc, problems: Problems) -> Any:
    if _NOT_TEXT.search(node.value):
        problems.unreadable_value(loc, f"bad value {node.value!r}: a NUL or half a UTF-16 surrogate pair is not text")
        return None
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    if ":" in node.value and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
        return node.value  # YAML 1.1 base-60 (8:30 -> 510) surprises everyone: keep the text
    if node.tag in ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
        problems.unreadable_value(loc, f"bad value {node.value!r}: a {node.tag[18:]} tag on a plain value")
        return None
    construct = yaml.SafeLoader.yaml_constructors[node.tag]
    try:
        return construct(_CONSTRUCTOR, node)
    # A tag forced on a value it does not fit (`!!bool maybe`, `!!timestamp soon`) fails in many ways.
    except (yaml.YAMLError, ValueError, OverflowError, LookupError, AttributeError, TypeError) as exc:
        problems.unreadable_value(loc, f"bad value {node.value!r}: {exc}")
        return None


_CONSTRUCTOR = yaml.constructor.SafeConstructor()
