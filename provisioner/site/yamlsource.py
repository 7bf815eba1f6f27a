"""YAML loading for files that may come from a pull request: bounded, plain data only, every key's line kept.

A site file is read in four passes, each one bounded before the next starts:
1. bytes: at most MAX_BYTES, UTF-8 (a UTF-8 byte-order mark is allowed);
2. parser events: nesting depth and node count are capped as the text is read, and the key path is tracked so
   a syntax error can name where it happened;
3. the node graph: aliases are followed without expanding them, so a few kilobytes of nested aliases (a
   "billion laughs") or an alias that contains itself are refused before anything is built; keys must be plain
   text and unique; only plain YAML types are allowed (no tags that build objects, sets or bytes); dates must be
   real calendar dates;
4. construction with PyYAML's SafeLoader, which then cannot fail on anything but what pass 3 let through.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024  # a site with hundreds of hosts is well under 200 KiB
MAX_DEPTH = 24  # the site model nests 6 levels deep
MAX_NODES = 100_000  # values after following every alias; the example has about 300

_PLAIN_TAGS = {
    "tag:yaml.org,2002:" + name for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge")
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_KIND_OF_TAG: dict[str, type[yaml.Node]] = {
    "tag:yaml.org,2002:map": yaml.MappingNode,
    "tag:yaml.org,2002:seq": yaml.SequenceNode,
    **{
        "tag:yaml.org,2002:" + name: yaml.ScalarNode
        for name in ("str", "int", "float", "bool", "null", "timestamp", "merge")
    },
}
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
MAX_NUMBER_DIGITS = 40
_READS_AS = {
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:null": "nothing (null)",
}
PLAIN_HELP = "plain YAML values: text, numbers, true/false, dates (YYYY-MM-DD), lists and mappings"


@dataclass
class YamlSource:
    """Parsed data plus a map from key path to its (1-based) line number."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor present in the file."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


class YamlInputError(Exception):
    """The file is not acceptable YAML: where (line, key path) and why, with what is allowed."""

    def __init__(self, line: int | None, path: KeyPath, message: str):
        self.line = line
        self.path = path
        self.message = message
        super().__init__(message)


def format_path(path: KeyPath) -> str:
    """('environments', 0, 'segment') -> 'environments[0].segment'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# ---- pass 1: bytes ---------------------------------------------------------------------------


def _decode(raw: bytes, size: int | None = None) -> str:
    if len(raw) > MAX_BYTES:
        shown = f"{size:,} bytes" if size is not None else f"more than {MAX_BYTES:,} bytes"
        raise YamlInputError(1, (), f"the file is {shown}; allowed: at most {MAX_BYTES:,} bytes (1 MiB) of YAML")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise YamlInputError(1, (), "the file is UTF-16 text; allowed: UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        readable = raw.decode("utf-8", errors="replace")
        raise YamlInputError(
            line,
            _path_at_line(readable, line),
            f"byte {exc.start + 1} (0x{raw[exc.start]:02x}) is not valid UTF-8; allowed: UTF-8 text",
        ) from None
    return text.removeprefix("\ufeff")


# ---- pass 2: events ----------------------------------------------------------------------------


@dataclass
class _Frame:
    is_mapping: bool
    key: str | int | None = None
    want_key: bool = True
    index: int = -1


@dataclass
class _EventScan:
    """The key path of every line where a value starts, for messages about errors found later."""

    line_paths: dict[int, KeyPath] = field(default_factory=dict)
    stack: list[_Frame] = field(default_factory=list)

    def path(self) -> KeyPath:
        return tuple(f.key for f in self.stack if f.key is not None)

    def path_at(self, line: int | None) -> KeyPath:
        if line is None:
            return self.path()
        earlier = [n for n in self.line_paths if n <= line]
        return self.line_paths[max(earlier)] if earlier else ()


def _scan_events(text: str, scan: _EventScan | None = None) -> _EventScan:
    scan = scan if scan is not None else _EventScan()
    nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionEndEvent):
                scan.stack.pop()
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            nodes += 1
            line = event.start_mark.line + 1 if event.start_mark is not None else 0
            top = scan.stack[-1] if scan.stack else None
            if top is not None and top.is_mapping and top.want_key:
                if not isinstance(event, yaml.ScalarEvent):
                    parent = tuple(f.key for f in scan.stack[:-1] if f.key is not None)
                    raise YamlInputError(
                        line, parent, "a key is a list, a mapping or an alias; allowed: keys that are plain words"
                    )
                top.key, top.want_key = event.value, False
                scan.line_paths[line] = scan.path()  # a key names its line better than the mapping around it
                continue
            if top is not None and top.is_mapping:
                top.want_key = True
            elif top is not None:
                top.index += 1
                top.key = top.index
            scan.line_paths.setdefault(line, scan.path())
            if isinstance(event, yaml.CollectionStartEvent):
                scan.stack.append(_Frame(is_mapping=isinstance(event, yaml.MappingStartEvent)))
                if len(scan.stack) > MAX_DEPTH:
                    raise YamlInputError(
                        line, scan.path(), f"nested more than {MAX_DEPTH} levels deep; allowed: at most {MAX_DEPTH}"
                    )
            if nodes > MAX_NODES:
                raise YamlInputError(line, scan.path(), f"more than {MAX_NODES:,} values; allowed: at most that many")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlInputError(
            mark.line + 1 if mark is not None else None, _mapping_path(scan.path()), _syntax(exc)
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        printable = yaml.reader.Reader.NON_PRINTABLE.sub(" ", text)
        raise YamlInputError(
            line,
            _path_at_line(printable, line),
            f"the control character U+{code:04X} is not allowed; allowed: printable text",
        ) from None
    return scan


def _syntax(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or str(exc)
    if "undefined alias" in problem:
        return f"not valid YAML: {problem}; allowed: an alias (*name) to an anchor (&name) defined above it"
    return (
        f"not valid YAML: {problem}; allowed: block YAML as in inventories/example/site.yml (spaces, not tabs, "
        "for indentation; every bracket and quote closed; one document)"
    )


def _mapping_path(path: KeyPath) -> KeyPath:
    """A syntax error's place, as the key it happened under (a half-read list item is not in the file yet)."""
    while path and isinstance(path[-1], int):
        path = path[:-1]
    return path


def _path_at_line(text: str, line: int) -> KeyPath:
    """Best effort: the key path where `line` is, in a text that may not parse to the end."""
    scan = _EventScan()
    with contextlib.suppress(YamlInputError):
        _scan_events(text, scan)
    return scan.path_at(line)


# ---- pass 3: the node graph ----------------------------------------------------------------------


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_size(root: yaml.Node, scan: _EventScan) -> None:
    """Values and depth after following every alias, computed once per node (no expansion); cycles refused."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            line = node.start_mark.line + 1
            if size[key] > MAX_NODES:
                raise YamlInputError(
                    line,
                    scan.path_at(line),
                    f"aliases here expand to more than {MAX_NODES:,} values; allowed: at most that many",
                )
            if depth[key] > MAX_DEPTH:
                raise YamlInputError(
                    line,
                    scan.path_at(line),
                    f"aliases here nest more than {MAX_DEPTH} levels deep; allowed: at most {MAX_DEPTH}",
                )
            continue
        if key in size:
            continue
        if key in on_path:
            line = node.start_mark.line + 1
            raise YamlInputError(
                line,
                scan.path_at(line),
                "an alias refers to a value that contains it; allowed: aliases to other values",
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in size)


class _Checker:
    """Walks each node once, recording key lines and refusing what is not plain, unique, real data."""

    def __init__(self, constructor: yaml.SafeLoader):
        self.constructor = constructor
        self.lines: dict[KeyPath, int] = {}
        self.seen: set[int] = set()

    def walk(self, node: yaml.Node, path: KeyPath) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self.seen:  # reached again through an alias: checked the first time
            return
        self.seen.add(id(node))
        line = node.start_mark.line + 1
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise YamlInputError(line, path, f"the YAML tag '{tag}' is not allowed; allowed: {PLAIN_HELP}")
        kind = _KIND_OF_TAG.get(node.tag)
        if kind is not None and not isinstance(node, kind):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise YamlInputError(line, path, f"the tag '{tag}' does not fit this value; allowed: {PLAIN_HELP}")
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                self.walk(item, (*path, index))
        elif isinstance(node, yaml.ScalarNode):
            self._scalar(node, line, path)

    def _scalar(self, node: yaml.ScalarNode, line: int, path: KeyPath) -> None:
        """Each value is built once here, so the whole document cannot fail to build later."""
        surrogate = next((c for c in node.value if "\ud800" <= c <= "\udfff"), None)
        if surrogate is not None:
            raise YamlInputError(
                line, path, f"the text holds U+{ord(surrogate):04X}, half of a character; allowed: valid Unicode text"
            )
        shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_DIGITS:
            raise YamlInputError(
                line,
                path,
                f"'{shown}' is a number of {len(node.value)} characters; allowed: at most {MAX_NUMBER_DIGITS}",
            )
        try:
            self.constructor.yaml_constructors[node.tag](self.constructor, node)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, yaml.YAMLError):
            if node.tag == _TIMESTAMP_TAG:
                message = f"'{shown}' is not a real calendar date; allowed: a date YYYY-MM-DD"
            else:
                wanted = _READS_AS.get(node.tag, "text")
                message = f"'{shown}' cannot be read as {wanted}; allowed: {wanted}, or text in quotes"
            raise YamlInputError(line, path, message) from None

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> None:
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path)
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a list or mapping"
                raise YamlInputError(
                    line,
                    (*path, str(shown)),
                    f"the key '{shown}' reads as a number, true/false, null or date, not text; "
                    "allowed: keys that are words (quote it)",
                )
            key = key_node.value
            if key in first:
                raise YamlInputError(
                    line, (*path, key), f"duplicate key '{key}' (first on line {first[key]}); allowed: each key once"
                )
            first[key] = line
            self.lines[(*path, key)] = line
            self.walk(value_node, (*path, key))

    def _merge(self, value: yaml.Node, path: KeyPath) -> None:
        """`<<: *defaults` (or a list of them) merges mappings, as YAML 1.1 defines; anything else is refused."""
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise YamlInputError(
                    value.start_mark.line + 1,
                    (*path, "<<"),
                    "a merge key '<<' takes a mapping or a list of mappings; allowed: '<<: *name' of a mapping",
                )
            self.walk(source, path)


# ---- the whole load -------------------------------------------------------------------------------


def load_yaml(path: Path, display_name: str | None = None) -> YamlSource:
    """Parse `path` within the limits above; raise YamlInputError (line, key path, message) on anything else."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
        size = os.fstat(handle.fileno()).st_size
    return load_yaml_text(raw, display_name or str(path), size)


def load_yaml_text(raw: bytes, file: str, size: int | None = None) -> YamlSource:
    text = _decode(raw, size)
    scan = _scan_events(text)
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:  # e.g. an alias to an anchor that was never defined
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            raise YamlInputError(line, _mapping_path(scan.path_at(line)), _syntax(exc)) from None
        if node is None:
            return YamlSource(file=file, data=None)
        _check_size(node, scan)
        checker = _Checker(loader)
        checker.walk(node, ())
        try:
            data = loader.construct_document(node)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            # the walk built every value already; this is a guard, not a path anyone is expected to take
            raise YamlInputError(None, (), f"cannot be read as plain data ({exc}); allowed: {PLAIN_HELP}") from None
    finally:
        loader.dispose()
    return YamlSource(file=file, data=data, lines=checker.lines)
