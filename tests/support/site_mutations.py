"""Mutants of the example site file: the strategies behind the site-file fuzzer (issue 16).

Shared by tests/unit/site/test_site_fuzz.py (a short, reproducible run in `make test`) and bench/site_fuzz.py (a long
run). A mutant is the bytes of a site.yml, made in four layers, each of which may do nothing:

  data   change the parsed example's values, types, keys and structure, then dump it as YAML;
  nodes  change the YAML node graph: aliases, alias bombs, cycles, merge keys, tags, complex and non-string keys;
  text   change the YAML text: impossible dates, huge numbers, deep brackets, duplicated or broken lines;
  bytes  change the encoding: BOMs, UTF-16, invalid UTF-8, NUL bytes, flipped, cut or repeated bytes.

Every layer shrinks towards "no change", so a failure shrinks towards the smallest edit of the example that shows it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import yaml
from helpers import EXAMPLE
from hypothesis import strategies as st

from provisioner.site.model import Site

EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
EXAMPLE_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE_TEXT)

Path = tuple[Any, ...]
Draw = Callable[[st.SearchStrategy[Any]], Any]

YAML_TAG = "tag:yaml.org,2002:"
# libyaml where it is installed: building mutants then costs a fraction of checking them
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# ---- values ----------------------------------------------------------------------------------------------------

# Text that Jinja would run if it reached Ansible untagged: a lookup on the controller, raw blocks, comments.
TEMPLATES = (
    "{{ lookup('pipe','id') }}",
    "{{ lookup('pipe', 'touch /tmp/site-fuzz-ran') }}",
    "{% raw %}",
    "{% endraw %}",
    "{# comment #}",
    "{{ 7 * 6 }}",
    "{%- for x in range(10**9) %}{% endfor %}",
    "{{",
    "{%",
    "{#",
    "a {{ b }} c",
)

# Strings YAML 1.1 or the model read as something else, or that look like a neighbour of a valid value.
TRICKY_WORDS = (
    "", " ", "null", "~", "yes", "no", "on", "off", "y", "NaN", ".inf", "-0", "0x1F", "0o17", "0b101", "1_000",
    "1:30", "2030-02-30", "2024-01-01", "-", "---", "...", "*a", "&a", "!unsafe x", "<<", "%YAML 1.2", "\\", "'",
    '"', "#", "@", "`", "dev ", "DEV", "dev\n", "dev\x00", "ｄｅｖ", "d\u0435v", "prod\u200b", "\u202eved",
)  # fmt: skip

ADDRESSES = (
    "10.90.10.11", "10.90.10.0", "10.90.10.255", "10.90.10.256", "10.90.0.1", "999.1.1.1", "1.2.3", "010.090.010.011",
    "0.0.0.0", "255.255.255.255", "8.8.8.8", "::1", "fe80::1%eth0", "10.90.10.0/24", "10.90.10.0/33", "0.0.0.0/0",
    "10.90.10.7/24", "10.90.0.0/16", "10.90.10.11 ", "10.90.10.11\n",
)  # fmt: skip

EDGE_INTS = (0, -1, 1, 4094, 4095, 65535, 65536, 2**31 - 1, 2**31, 2**63, -(2**63), 10**30, -(10**30))


def _model_keys() -> tuple[str, ...]:
    """Every key the site model knows, found by walking it (so the list follows the model)."""
    found: set[str] = set()
    pending: list[Any] = [Site]
    while pending:
        annotation = pending.pop()
        fields = getattr(annotation, "model_fields", None)
        if isinstance(fields, dict):
            for name, field in fields.items():
                found.update(filter(None, (name, field.alias)))
                pending.append(field.annotation)
        pending.extend(getattr(annotation, "__args__", ()))  # list[X], X | None, Annotated[X, ...], unions
    return tuple(sorted(found))


MODEL_KEYS = _model_keys()

# The strategies are built once: building them per draw costs more than drawing from them.
LONG_TEXTS = st.builds(lambda char, n: char * n, st.sampled_from("x{é\u202e\t"), st.integers(200, 70_000))
TEXTS = st.one_of(
    st.sampled_from(TEMPLATES),
    st.sampled_from(TRICKY_WORDS),
    st.sampled_from(ADDRESSES),
    st.text(max_size=30),
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Co"]), max_size=8),  # controls, bidi, spaces
    LONG_TEXTS,
)

# Mapping keys: the model's own names (in the wrong places), near misses, and keys that are not strings.
KEYS = st.one_of(
    st.sampled_from(MODEL_KEYS),
    st.sampled_from(MODEL_KEYS).map(str.upper),
    st.sampled_from(MODEL_KEYS).map(lambda key: key + " "),
    st.text(max_size=12),
    st.sampled_from(TEMPLATES),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.floats(),
    st.dates(),
)

SCALARS = st.one_of(
    TEXTS,
    st.sampled_from(EDGE_INTS),
    st.integers(),
    st.integers(-(10**300), 10**300),
    st.floats(),
    st.booleans(),
    st.none(),
    st.dates(),
    st.datetimes(),
    st.binary(max_size=12),  # dumped as !!binary: loads as bytes
    st.sets(st.integers(0, 9), max_size=3),  # dumped as !!set
)


# ---- layer 1: the parsed data ----------------------------------------------------------------------------------


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    """The path of every value below `value`, parents before children."""
    children: Any = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found: list[Path] = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _get(value: Any, path: Path) -> Any:
    for part in path:
        value = value[part]
    return value


# Any value: a scalar, a small container of them, or a piece of the example moved somewhere else.
VALUES = st.one_of(
    SCALARS,
    st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4)),
    st.sampled_from(_paths(EXAMPLE_DATA)).map(lambda path: copy.deepcopy(_get(EXAMPLE_DATA, path))),
)


def _replace(draw: Draw, data: Any, path: Path) -> None:
    _get(data, path[:-1])[path[-1]] = draw(VALUES)


def _delete(draw: Draw, data: Any, path: Path) -> None:
    del _get(data, path[:-1])[path[-1]]


def _rename(draw: Draw, data: Any, path: Path) -> None:
    parent = _get(data, path[:-1])
    if not isinstance(parent, dict):
        return _replace(draw, data, path)
    new = draw(KEYS)
    renamed = {(new if key == path[-1] else key): value for key, value in parent.items()}
    parent.clear()
    parent.update(renamed)
    return None


def _add(draw: Draw, data: Any, path: Path) -> None:
    target = _get(data, path)
    if isinstance(target, dict):
        target[draw(KEYS)] = draw(VALUES)
    elif isinstance(target, list):
        target.insert(draw(st.integers(0, len(target))), draw(VALUES))
    else:
        _replace(draw, data, path)


def _wrap(draw: Draw, data: Any, path: Path) -> None:
    parent, key = _get(data, path[:-1]), path[-1]
    parent[key] = [parent[key]] if draw(st.booleans()) else {draw(KEYS): parent[key]}


def _nest(draw: Draw, data: Any, path: Path) -> None:
    # deep enough to stress recursion in the loader, shallow enough for yaml.safe_dump's own recursion
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    for level in range(draw(st.integers(2, 100))):
        value = [value] if level % 2 else {"x": value}
    parent[key] = value


def _duplicate(draw: Draw, data: Any, path: Path) -> None:
    """A second copy of a list item: duplicate names, VLANs, addresses, ids."""
    parent, key = _get(data, path[:-1]), path[-1]
    if isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    else:
        _add(draw, data, path[:-1])


def _swap(draw: Draw, data: Any, path: Path) -> None:
    other = draw(st.sampled_from(_paths(data)))
    if other[: len(path)] == path or path[: len(other)] == other:  # one holds the other: swapping would make a cycle
        return _replace(draw, data, path)
    first, second = _get(data, path), _get(data, other)
    _get(data, path[:-1])[path[-1]] = second
    _get(data, other[:-1])[other[-1]] = first
    return None


FREE_TEXT = ("description", "full_name", "justification", "reason", "ssh_key")


def _free_text(draw: Draw, data: Any, path: Path) -> None:
    """Nasty text where the model takes any text (names, descriptions, an SSH key's comment): such mutants are often
    accepted, so they reach the inventory, where braces must stay text."""
    spots = [p for p in _paths(data) if p[-1] in FREE_TEXT and isinstance(_get(data, p), str)]
    if not spots:
        return _replace(draw, data, path)
    spot = draw(st.sampled_from(spots))
    parent = _get(data, spot[:-1])
    text = draw(st.one_of(st.sampled_from(TEMPLATES), TEXTS))
    parent[spot[-1]] = f"{parent[spot[-1]]} {text}" if spot[-1] == "ssh_key" else text
    return None


DATA_MUTATIONS = (_replace, _delete, _rename, _add, _wrap, _nest, _duplicate, _swap, _free_text)


@st.composite
def mutated_data(draw: Draw) -> Any:
    data = copy.deepcopy(EXAMPLE_DATA)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths or draw(st.integers(0, 30)) == 0:  # now and then the whole file is something else
            data = draw(st.one_of(VALUES, st.just([data])))
            continue
        mutate = draw(st.sampled_from(DATA_MUTATIONS))
        mutate(draw, data, draw(st.sampled_from(paths)))
    return data


def dump(draw: Draw, data: Any) -> str:
    flow = draw(st.sampled_from([False, None, True]))
    return yaml.dump(data, Dumper=DUMPER, sort_keys=False, allow_unicode=draw(st.booleans()), default_flow_style=flow)


# ---- layer 2: the YAML node graph ------------------------------------------------------------------------------

Slot = tuple[yaml.Node, int, str]  # a place a node sits: (its parent, index in parent.value, "item" | "key" | "value")


def _slots(root: yaml.Node) -> list[Slot]:
    """Every place below the root where a node sits (each parent once, even when aliased or cyclic)."""
    found: list[Slot] = []
    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found.append((node, index, "item"))
                pending.append(item)
        elif isinstance(node, yaml.MappingNode):
            for index, (key, value) in enumerate(node.value):
                found.extend([(node, index, "key"), (node, index, "value")])
                pending.extend([key, value])
    return found


def _at(slot: Slot) -> yaml.Node:
    parent, index, part = slot
    entry = parent.value[index]
    return entry if part == "item" else entry[0] if part == "key" else entry[1]


def _put(slot: Slot, node: yaml.Node) -> None:
    parent, index, part = slot
    if part == "item":
        parent.value[index] = node
    elif part == "key":
        parent.value[index] = (node, parent.value[index][1])
    else:
        parent.value[index] = (parent.value[index][0], node)


def _scalar(value: str, tag: str = "str") -> yaml.ScalarNode:
    return yaml.ScalarNode(tag if tag.startswith("!") else YAML_TAG + tag, value)


def _collections(root: yaml.Node) -> list[yaml.Node]:
    return [root, *(node for node in map(_at, _slots(root)) if isinstance(node, yaml.CollectionNode))]


def _alias(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    """The same node in two places: an anchor and an alias (a cycle when the node holds the slot). Values only:
    a collection as a key is _complex_key's job, and would otherwise crowd out every other failure."""
    slots = _slots(root)
    if slot[2] == "key":
        slot = draw(st.sampled_from([other for other in slots if other[2] != "key"]))
    _put(slot, draw(st.sampled_from([root, *map(_at, slots)])))


def _bomb(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    """Billion laughs: each level holds `width` aliases of the level below, so a few lines stand for width**depth."""
    width, depth = draw(st.integers(2, 10)), draw(st.integers(1, 12))
    node: yaml.Node = _scalar("lol")
    for level in range(depth):
        if draw(st.booleans()):
            node = yaml.SequenceNode(YAML_TAG + "seq", [node] * width, flow_style=True)
        else:
            pairs = [(_scalar(f"k{level}x{n}"), node) for n in range(width)]
            node = yaml.MappingNode(YAML_TAG + "map", pairs, flow_style=True)
    _put(slot, node)


def _merge(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    """A `<<:` merge key in a mapping, merging another mapping, a list of them, itself, or something unmergeable."""
    mappings = [node for node in _collections(root) if isinstance(node, yaml.MappingNode)]
    if not mappings:  # an earlier mutation left no mapping
        return
    target = draw(st.sampled_from(mappings))
    source = draw(
        st.one_of(
            st.sampled_from(mappings),
            st.lists(st.sampled_from(mappings), min_size=1, max_size=3).map(
                lambda items: yaml.SequenceNode(YAML_TAG + "seq", items)
            ),
            st.sampled_from([_scalar("x"), yaml.SequenceNode(YAML_TAG + "seq", [_scalar("x")])]),
        )
    )
    target.value.insert(draw(st.integers(0, len(target.value))), (_scalar("<<", "merge"), source))


TAGS = (
    "python/object/apply:os.system", "python/name:os.system", "python/object:object", "python/tuple", "int", "float",
    "bool", "null", "str", "timestamp", "binary", "set", "omap", "pairs", "seq", "map", "merge", "value", "yaml",
    "!unsafe", "!vault", "!include", "!", "!!", "tag:example.com,2000:app/foo",
)  # fmt: skip


def _tag(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    """An explicit tag on a node, often one that does not fit it (`!!int abc`, `!!set` on a string)."""
    node = _at(slot)
    tag = draw(st.sampled_from(TAGS))
    node.tag = tag if tag.startswith(("!", "tag:")) else YAML_TAG + tag


def _complex_key(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    """A key that is a list or a mapping (`? [a]`), where Python needs something hashable."""
    mappings = [node for node in _collections(root) if isinstance(node, yaml.MappingNode)]
    if not mappings:  # an earlier mutation left no mapping
        return
    target = draw(st.sampled_from(mappings))
    key = draw(st.sampled_from([*map(_at, _slots(root)), yaml.SequenceNode(YAML_TAG + "seq", [_scalar("a")])]))
    target.value.append((key, _scalar("b")))


ODD_KEYS = (
    ("int", "1"), ("int", "0"), ("int", "1:30"), ("bool", "true"), ("null", "null"), ("float", "1.5"),
    ("float", ".nan"), ("timestamp", "2024-01-01"),
)  # fmt: skip


def _odd_key(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    """A key that is not a string: a number, a boolean, null, a date, NaN."""
    mappings = [node for node in _collections(root) if isinstance(node, yaml.MappingNode) and node.value]
    if not mappings:  # an earlier mutation left no mapping (the root became a list or a scalar)
        return
    target = draw(st.sampled_from(mappings))
    kind, text = draw(st.sampled_from(ODD_KEYS))
    if target.value and draw(st.booleans()):
        index = draw(st.integers(0, len(target.value) - 1))
        target.value[index] = (_scalar(text, kind), target.value[index][1])
    else:
        target.value.append((_scalar(text, kind), _scalar("x")))


def _duplicate_key(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    mappings = [node for node in _collections(root) if isinstance(node, yaml.MappingNode) and node.value]
    if mappings:
        target = draw(st.sampled_from(mappings))
        key, _ = draw(st.sampled_from(target.value))
        twin = yaml.ScalarNode(key.tag, key.value) if isinstance(key, yaml.ScalarNode) else key
        target.value.append((twin, draw(st.sampled_from([_at(slot), _scalar("x")]))))


RETEXTS = st.one_of(TEXTS, st.sampled_from(("2030-02-30", "9" * 5000, "1e999", "-.inf")))


def _retext(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    """A scalar whose text is replaced (tag kept, so `!!timestamp 2030-02-30` or `!!int 1e999` can appear)."""
    node = _at(slot)
    if isinstance(node, yaml.ScalarNode):
        node.value = draw(RETEXTS)
        node.style = None


def _deepen(draw: Draw, root: yaml.Node, slot: Slot) -> None:
    node = _at(slot)
    for _ in range(draw(st.integers(2, 60))):  # yaml.serialize recurses too: the text layer goes deeper
        node = yaml.SequenceNode(YAML_TAG + "seq", [node], flow_style=True)
    _put(slot, node)


NODE_MUTATIONS = (_alias, _bomb, _merge, _tag, _complex_key, _odd_key, _duplicate_key, _retext, _deepen)


def mutate_nodes(draw: Draw, text: str) -> str:
    count = draw(st.integers(0, 2))
    if not count:
        return text
    root = yaml.compose(text, Loader=LOADER)
    if not isinstance(root, yaml.CollectionNode) or not root.value:
        return text
    for _ in range(count):
        mutate = draw(st.sampled_from(NODE_MUTATIONS))
        mutate(draw, root, draw(st.sampled_from(_slots(root))))
    return yaml.serialize(root, Dumper=DUMPER, allow_unicode=True)


# ---- layer 3: the text -----------------------------------------------------------------------------------------

# Where a value starts and ends: `key: value` to the end of its line in block style, `{key: value,` in flow style.
BLOCK_VALUE = re.compile(r"(?m)^[ \t]*(?:- +)?[\w<-]+:[ \t]+([^\s#|>][^\n]*?)(?=[ \t]+#|[ \t]*$)")
FLOW_VALUE = re.compile(r"(?:(?<=\{)|(?<=, ))[\w-]+: ([^\s,{}\[\]][^,{}\[\]\n]*)")


# Anchors, aliases, tags, templates, flow keys and escapes, each where a plain value stood.
ODD_SNIPPETS = (
    "*undefined", "&a", "&a [*a]", "&a {b: *a}", "!!python/object/apply:os.system [id]", "!!binary AAAA",
    "!!binary ????", "!!set {a, b}", "!!omap [a: 1]", "!!int abc", "!!float abc", "!!bool maybe", "!!timestamp abc",
    "!!null x", "!unsafe '{{ x }}'", "'{{ lookup(\"pipe\",\"id\") }}'", "{{ x }}", "? [a]", "{[a]: b}", "{<<: 1}",
    "!!map [a]", "!!set [a]", "!!seq {a: b}", "|", ">-", '"\\ud800"', '"\\x00"', '"\\uffff"', "'''", "\t", "%",
    "@x", "`x`",
)  # fmt: skip
_DEPTH = st.integers(10, 100_000)
# Text put in place of a value: what the parser and constructors choke on.
SNIPPETS = st.one_of(
    st.sampled_from(("2030-02-30", "2023-02-29", "2030-13-01", "2030-00-10", "2030-12-32 10:00:00",
                     "2030-02-30T25:61:61Z", "2030-1-1", "1:30:00", "1e999", "-.inf", ".nan", "0x_", "0b_", "._")),
    st.integers(4000, 100_000).map(lambda n: "9" * n),  # over Python's int-from-text limit of 4300 digits
    st.integers(1500, 20_000).map(lambda n: "0x" + "f" * n),
    st.integers(1500, 20_000).map(lambda n: "1" + "_0" * n),
    _DEPTH.map(lambda n: "[" * n + "]" * n),
    _DEPTH.map(lambda n: "{a: " * n + "b" + "}" * n),
    _DEPTH.map(lambda n: "[" * n),
    st.integers(10, 5000).map(lambda n: "- " * n + "x"),
    st.sampled_from(ODD_SNIPPETS),
    TEXTS.map(lambda text: yaml.safe_dump(text, default_style='"', width=10**9).rstrip("\n")),
)  # fmt: skip


def _value_replaced(draw: Draw, text: str) -> str:
    spots = [match.span(1) for pattern in (BLOCK_VALUE, FLOW_VALUE) for match in pattern.finditer(text)]
    if not spots:
        return text
    start, end = draw(st.sampled_from(spots))
    return text[:start] + draw(SNIPPETS) + text[end:]


def _line_edit(draw: Draw, text: str) -> str:
    """Duplicate, drop or swap whole lines, or shift one: duplicate keys, lost keys, broken indentation."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    index = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["duplicate", "drop", "swap", "indent", "dedent", "tab"]))
    if action == "duplicate":
        lines.insert(index, lines[index])
    elif action == "drop":
        del lines[index]
    elif action == "swap":
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    elif action == "indent":
        lines[index] = "  " + lines[index]
    elif action == "dedent":
        lines[index] = lines[index].removeprefix("  ")
    else:
        lines[index] = "\t" + lines[index]
    return "".join(lines)


HEADERS = (
    "%YAML 1.2\n---\n",
    "%YAML 1.1\n%YAML 1.1\n---\n",
    "%TAG ! tag:yaml.org,2002:python/object/apply:\n---\n",
    "---\n...\n---\n",
    "--- !!set\n",
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
)


def _header(draw: Draw, text: str) -> str:
    return draw(st.sampled_from(HEADERS)) + text if draw(st.booleans()) else text + draw(st.sampled_from(HEADERS))


TEXT_MUTATIONS = (_value_replaced, _line_edit, _header)


def mutate_text(draw: Draw, text: str) -> str:
    for _ in range(draw(st.integers(0, 2))):
        text = draw(st.sampled_from(TEXT_MUTATIONS))(draw, text)
    return text


# ---- layer 4: the bytes ----------------------------------------------------------------------------------------

ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252")
BAD_BYTES = (b"\x00", b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xc0\xaf", b"\xe2\x80\xa8",
             b"\xc2\x85", b"\r", b"\x1b[31m", b"\x7f")  # fmt: skip


def encode(draw: Draw, text: str) -> bytes:
    # mostly UTF-8, as written by an editor; the rest is what a Windows editor or a careless copy leaves behind
    encoding = "utf-8" if draw(st.integers(0, 5)) else draw(st.sampled_from(ENCODINGS))
    return text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf") else "replace")


def mutate_bytes(draw: Draw, raw: bytes) -> bytes:
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "flip", "cut", "repeat"]))
        if action == "insert":
            raw = raw[:at] + draw(st.one_of(st.sampled_from(BAD_BYTES), st.binary(min_size=1, max_size=4))) + raw[at:]
        elif action == "flip" and at < len(raw):
            raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
        elif action == "cut":
            raw = raw[:at]
        elif action == "repeat":
            size = draw(st.integers(1, 200))
            raw = raw[:at] + raw[at : at + size] * 2 + raw[at + size :]
    return raw


# ---- the whole file --------------------------------------------------------------------------------------------


@st.composite
def wild_files(draw: Draw) -> bytes:
    """A site.yml changed in any of the four layers: mostly refused, as it should be."""
    text = dump(draw, draw(mutated_data())) if draw(st.booleans()) else EXAMPLE_TEXT
    text = mutate_nodes(draw, text)
    text = mutate_text(draw, text)
    return mutate_bytes(draw, encode(draw, text))


@st.composite
def plausible_files(draw: Draw) -> bytes:
    """The example with hostile text only where any text is allowed: mostly accepted, so it reaches the inventory."""
    data = copy.deepcopy(EXAMPLE_DATA)
    for _ in range(draw(st.integers(1, 3))):
        _free_text(draw, data, ("site",))
    return dump(draw, data).encode("utf-8", errors="surrogatepass")


def site_files() -> st.SearchStrategy[bytes]:
    """The bytes of a mutant site.yml: one in four plausible, three in four wild."""
    return st.one_of(plausible_files(), wild_files(), wild_files(), wild_files())


# ---- fixed nasty files: the corpus of the CLI checks -----------------------------------------------------------


def _with(old: str, new: str) -> bytes:
    assert old in EXAMPLE_TEXT, old
    return EXAMPLE_TEXT.replace(old, new, 1).encode()


_BOMB = "".join(f"  - &l{n} [{', '.join([f'*l{n - 1}' if n else 'lol'] * 9)}]\n" for n in range(10))

NASTY_FILES: dict[str, bytes] = {
    "alias-bomb": _with("waivers: []", "waivers:\n" + _BOMB),
    "self-alias": _with("waivers: []", "waivers: &w [*w]"),
    "self-merge": _with("backend:\n  type: lxc", "backend: &b\n  type: lxc\n  <<: *b"),
    "impossible-date": _with("waivers: []", "waivers: [2030-02-30]"),
    "huge-int": _with("vlan: 10,", f"vlan: {'9' * 5000},"),
    "int-tag-on-text": _with("vlan: 10,", "vlan: !!int abc,"),
    "python-tag": _with("waivers: []", "waivers: !!python/object/apply:os.system [id]"),
    "complex-key": _with("waivers: []", "? [a]\n: b"),
    "integer-key": _with("waivers: []", "1: b"),
    "deep-brackets": _with("waivers: []", "waivers: " + "[" * 5000 + "]" * 5000),
    "utf-16": EXAMPLE_TEXT.encode("utf-16"),
    "utf-8-bom": EXAMPLE_TEXT.encode("utf-8-sig"),
    "invalid-utf-8": EXAMPLE_TEXT.encode().replace(b"Example Ltd", b"Example \xff Ltd", 1),
    "nul-byte": _with("Example Ltd", "Example \x00 Ltd"),
    "hex-without-digits": _with("vlan: 10,", "vlan: 0x_,"),
    "map-tag-on-a-list": _with("waivers: []", "waivers: !!map [a]"),
    "lone-surrogate-in-free-text": _with("full_name: Alice Archer", 'full_name: "Alice \\ud800"'),
    "lone-surrogate-in-a-colour": _with("colour: green", 'colour: "gr\\ud800een"'),
    "template-in-name": _with("full_name: Alice Archer", "full_name: \"{{ lookup('pipe','id') }}\""),
}
