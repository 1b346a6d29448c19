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
from macrowatch.config.safeio import FileTooLarge, NotRegularFile, read_bytes

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

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


class _TooDeep(Exception):
    """Nesting deeper than MAX_DEPTH; `mark` is where the first value too deep starts."""

    def __init__(self, mark: yaml.Mark | None = None, loc: Loc | None = None):
        super().__init__()
        self.mark, self.loc = mark, loc


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops composing after MAX_NODES nodes: a file of millions of values (under the size
    limit) fails in seconds, instead of taking a minute of CPU and a gigabyte of nodes first. It also stops at
    MAX_DEPTH levels of nesting, at the value too deep (composing recurses: Python's stack would run out
    first, with no place to report)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.nodes_left = MAX_NODES
        self.depth = 0

    def compose_node(self, parent, index):
        self.nodes_left -= 1
        if self.nodes_left < 0:
            raise _TooLarge()
        if self.depth > MAX_DEPTH:
            raise _TooDeep(self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _loc(name: str, node: yaml.Node) -> Loc:
    return Loc(name, node.start_mark.line + 1, node.start_mark.column + 1)


def _mark_loc(name: str, mark: yaml.Mark | None) -> Loc:
    return Loc(name, mark.line + 1, mark.column + 1) if mark else Loc(name)


def load_file(path: Path, problems: Problems, display: str | None = None) -> YNode | None:
    """Read one YAML file; report syntax and structure problems; None when nothing usable."""
    name = display or str(path)
    try:  # a device, FIFO or growing file is refused before or while reading: memory stays bounded
        raw = read_bytes(path, MAX_FILE_BYTES)
    except (NotRegularFile, FileTooLarge) as exc:
        problems.error(Loc(name), str(exc.strerror))
        return None
    except OSError as exc:
        problems.error(Loc(name), f"cannot read file: {exc.strerror or exc}")
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
        plain = _plain(exc, text)
        if plain:
            mark, what = plain
        else:
            mark = exc.problem_mark or exc.context_mark
            what = exc.problem or exc.context or "invalid YAML"
            cm = exc.context_mark
            if exc.problem and exc.context and cm and mark and (cm.line, cm.column) != (mark.line, mark.column):
                what += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"  # where the mistake is
        problems.error(_mark_loc(name, mark), f"YAML syntax error: {what}")
        return None
    except yaml.YAMLError as exc:
        problems.error(Loc(name), f"YAML error: {' '.join(str(exc).split())}")  # one line, as every error
        return None
    except _TooDeep as exc:
        problems.error(_mark_loc(name, exc.mark), f"YAML is nested too deeply (more than {MAX_DEPTH} levels)")
        return None
    except RecursionError:  # not expected past the depth limit; kept so that no traceback can escape
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
    except _TooDeep as exc:  # aliases can nest deeper than the text does
        problems.error(exc.loc or _loc(name, docs[0]), f"YAML is nested too deeply (more than {MAX_DEPTH} levels)")
        return None


# PyYAML's names for what it found where a block ended, as a user reads the file.
_FOUND = {"<block mapping start>": "a key", "?": "a key", "<block sequence start>": "a list item",
          "-": "a list item", "<scalar>": "a value"}


def _plain(exc: yaml.MarkedYAMLError, text: str) -> tuple[yaml.Mark, str] | None:
    """The likely mistake behind PyYAML's commonest errors, in plain words, with where it is; None: no idea."""
    pm, cm, problem, context = exc.problem_mark, exc.context_mark, exc.problem or "", exc.context or ""
    if pm is None:
        return None
    lines = re.split("\r\n|[\n\r\x85\u2028\u2029]", text)  # the line breaks PyYAML counts
    line = lines[pm.line] if pm.line < len(lines) else ""
    first = pm.column == len(line) - len(line.lstrip(" "))  # the token begins its line: its indentation counts
    at = f"line {pm.line + 1}"
    m = re.fullmatch(r"expected <block end>, but found '(.*)'", problem)
    if m and cm is not None:
        thing, kind = _FOUND.get(m.group(1), m.group(1)), "mapping" if "mapping" in context else "list"
        where = f"the {kind} that encloses it starts at line {cm.line + 1}, column {cm.column + 1}"
        if not first:
            if thing == "a value":
                return pm, f"unexpected text after the value on {at}, column {pm.column + 1} (quote the whole value)"
            return pm, f"unexpected {thing} on {at}, column {pm.column + 1} ({where})"
        if thing == "a key" and kind == "list" and pm.column == cm.column:
            return pm, (f"likely a wrong indentation on {at}: a key at column {pm.column + 1}, where the list that "
                        f"starts at line {cm.line + 1} has its '- ' items (indent the key, or start it with '- ')")
        if thing == "a list item" and kind == "mapping" and pm.column == cm.column:
            return pm, (f"likely a wrong indentation on {at}: a list item at column {pm.column + 1}, among the keys "
                        f"of the mapping that starts at line {cm.line + 1} (indent the list under its key)")
        return pm, (f"likely a wrong indentation on {at}: {thing} at column {pm.column + 1} does not line up with "
                    f"the lines above it ({where})")
    if problem == "mapping values are not allowed here":
        if re.search(r":\s", line[:pm.column].lstrip(" -")):
            return pm, (f"a second ': ' on {at}, column {pm.column + 1}: a value that holds ': ' must be quoted "
                        "(key: \"a: b\")")
        return pm, (f"likely a wrong indentation on {at}: it is indented more than the key above it, so YAML reads "
                    "it as the rest of that key's value (line up its key with the keys above it)")
    if problem == "could not find expected ':'" and "simple key" in context and cm is not None:
        return cm, (f"line {cm.line + 1} is neither 'key: value' nor a list item (a ':' missing after the key, "
                    "or a wrong indentation)")
    if problem.startswith("found character '\\t' that cannot start any token"):
        return pm, f"a tab character on {at}: YAML indents with spaces only"
    return None


def _convert(node: yaml.Node, name: str, problems: Problems, budget: _Budget, depth: int) -> YNode:
    budget.left -= 1
    if budget.left < 0:
        raise _TooLarge()
    loc = _loc(name, node)
    if depth > MAX_DEPTH:
        raise _TooDeep(loc=loc)
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
