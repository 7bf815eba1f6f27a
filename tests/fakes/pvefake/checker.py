"""PVE::JSONSchema-style parameter checking, re-implemented from its documented behaviour.

The order of checks and the texts match PVE so that clients see the same 400 errors:
missing -> type -> format -> pattern -> maxLength -> minLength -> maximum/minimum -> enum.
Only the literal strings `0` and `1` are booleans at the top level (proxmoxer sends Python `True` as
`True`, which PVE rejects); inside property strings `parse_boolean` also accepts yes/no/on/off/true/false.
"""

from __future__ import annotations

import re
from typing import Any

from .formats import HASH_FORMATS, FormatError, check_named, split_format_name

Schema = dict[str, Any]
Errors = dict[str, str]

NOT_IN_SCHEMA = "property is not defined in schema and the schema does not allow additional properties"
_INTEGER_RE = re.compile(r"^[+-]?\d+$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")


def truthy(flag: object) -> bool:
    """Schema flags come as 1, "1", 0 or absent."""
    return flag not in (None, 0, "0", "", False)


def perl_regex(pattern: str) -> str:
    """Perl's `(?^:...)` / `(?^i:...)` (stringified qr//) are `(?:...)` / `(?i:...)` in Python."""
    return pattern.replace("(?^i:", "(?i:").replace("(?^:", "(?:")


_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def pattern_matches(pattern: str, value: str) -> bool:
    # PVE interpolates the pattern as m/^$pattern$/ without grouping, so alternations bind as in Perl.
    compiled = _PATTERN_CACHE.get(pattern)
    if compiled is None:
        compiled = re.compile("^" + perl_regex(pattern) + "$")
        _PATTERN_CACHE[pattern] = compiled
    return compiled.search(value) is not None


def add_error(errors: Errors, path: str, msg: str) -> None:
    path = path or "_root"
    # Perl joins with the single-quoted '\n', i.e. a literal backslash-n.
    errors[path] = f"{errors[path]}\\n{msg}" if path in errors else msg


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_number(text: str) -> bool:
    return _NUMBER_RE.match(text) is not None


def check_type(path: str, typ: str | None, value: Any, errors: Errors) -> bool:
    if not typ or typ == "any":
        return True
    if typ == "null":
        add_error(errors, path, f"type check ('{typ}') failed - value is not null")
        return False
    if typ == "array":
        if not isinstance(value, list):
            add_error(errors, path, f"type check ('{typ}') failed")
            return False
        return True
    if typ == "object":
        if not isinstance(value, dict):
            add_error(errors, path, f"type check ('{typ}') failed")
            return False
        return True
    if isinstance(value, bool):
        # A JSON true/false (from a JSON body) is only a boolean.
        if typ == "boolean":
            return True
        add_error(errors, path, f"type check ('{typ}') failed - got JSON::PP::Boolean")
        return False
    if isinstance(value, (list, dict)):
        add_error(errors, path, f"type check ('{typ}') failed - got {'ARRAY' if isinstance(value, list) else 'HASH'}")
        return False
    text = scalar_text(value)
    ok = True
    if typ == "boolean":
        ok = text in ("0", "1")
    elif typ == "integer":
        ok = _INTEGER_RE.match(text) is not None
    elif typ == "number":
        ok = is_number(text)
    if not ok:
        add_error(errors, path, f"type check ('{typ}') failed - got '{text}'")
    return ok


def _num(limit: Any) -> float:
    return float(limit)


def _fmt_limit(limit: Any) -> str:
    return scalar_text(limit) if not isinstance(limit, str) else limit


def check_prop(value: Any, schema: Schema, path: str, errors: Errors, version: str) -> None:
    if not isinstance(schema, dict):
        add_error(errors, path, "Invalid schema definition.")
        return
    if value is None:
        if schema.get("type") == "null":
            return
        if not truthy(schema.get("optional")) and not schema.get("alias") and not schema.get("group"):
            add_error(errors, path, "property is missing and it is not optional")
        return
    if schema.get("oneOf"):
        # SDN fabrics (9.x) use oneOf/type-property; the fake does not model them beyond types.
        return
    if not check_type(path, schema.get("type"), value, errors):
        return
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, element in enumerate(value):
                check_prop(element, items, f"{path}[{index}]", errors, version)
        return
    if isinstance(value, dict):
        if schema.get("properties") or schema.get("additionalProperties"):
            props = schema.get("properties") or {}
            check_object(path, props, value, schema.get("additionalProperties"), errors, version)
        return
    text = scalar_text(value)
    fmt = schema.get("format")
    if fmt:
        try:
            check_format(fmt, text, path, version)
        except FormatError as exc:
            add_error(errors, path, f"invalid format - {exc.text}")
            return
    pattern = schema.get("pattern")
    if pattern and not pattern_matches(pattern, text):
        add_error(errors, path, "value does not match the regex pattern")
        return
    if schema.get("maxLength") is not None and len(text) > int(schema["maxLength"]):
        add_error(errors, path, f"value may only be {schema['maxLength']} characters long")
        return
    if schema.get("minLength") is not None and len(text) < int(schema["minLength"]):
        add_error(errors, path, f"value must be at least {schema['minLength']} characters long")
        return
    if is_number(text):
        if schema.get("maximum") is not None and float(text) > _num(schema["maximum"]):
            add_error(errors, path, f"value must have a maximum value of {_fmt_limit(schema['maximum'])}")
            return
        if schema.get("minimum") is not None and float(text) < _num(schema["minimum"]):
            add_error(errors, path, f"value must have a minimum value of {_fmt_limit(schema['minimum'])}")
            return
    enum = schema.get("enum")
    if enum and text not in [scalar_text(e) for e in enum]:
        choices = ", ".join(map(str, enum))
        add_error(errors, path, f"value '{text}' does not have a value in the enumeration '{choices}'")


def check_object(
    path: str, props: dict[str, Schema], value: dict[str, Any], additional: Any, errors: Errors, version: str
) -> None:
    for key in sorted(props):
        check_prop(value.get(key), props[key], f"{path}.{key}" if path else key, errors, version)
    for key in sorted(value):
        new_path = f"{path}.{key}" if path else key
        sub = props.get(key)
        if sub is not None:
            requires = sub.get("requires")
            if isinstance(requires, str) and value.get(requires) is None:
                req_path = f"{path}.{requires}" if path else requires
                add_error(errors, req_path, f"missing property - '{new_path}' requires this property")
            continue
        if additional is not None and not truthy(additional):
            add_error(errors, new_path, NOT_IN_SCHEMA)
        elif isinstance(additional, dict):
            check_prop(value[key], additional, new_path, errors, version)


def check_format(fmt: Any, value: str, path: str, version: str) -> None:
    if isinstance(fmt, dict):
        parse_property_string(fmt, value, path, version)
        return
    if fmt == "regex":
        return
    base, kind = split_format_name(fmt)
    if kind == "none" and base in HASH_FORMATS:
        parse_property_string(HASH_FORMATS[base], value, path, version)
        return
    check_named(fmt, value, version)


def parse_boolean(text: str) -> str | None:
    low = text.lower()
    if low in ("1", "on", "yes", "true"):
        return "1"
    if low in ("0", "off", "no", "false"):
        return "0"
    return None


def split_property_string(fmt: dict[str, Schema], data: str) -> dict[str, str]:
    """Parse `k=v,k2=v2` with aliases, keyAlias and default_key exactly like PVE (no value checks)."""
    res: dict[str, str] = {}
    default_key: str | None = None
    for part in data.split(","):
        if not part.strip():
            continue
        m = re.match(r"^([^=]+)=(.+)$", part, re.DOTALL)
        if m:
            key, val = m.group(1), m.group(2)
            if key in res:
                raise FormatError(f"duplicate key in comma-separated list property: {key}\n")
            schema = fmt.get(key)
            if schema and schema.get("alias"):
                key_alias = schema.get("keyAlias")
                if key_alias:
                    if key_alias in res:
                        raise FormatError(f"key alias '{key_alias}' is already defined\n")
                    res[key_alias] = key
                key = schema["alias"]
                schema = fmt.get(key)
            if not schema:
                raise FormatError(f"invalid key in comma-separated list property: {key}\n")
            if schema.get("type") == "boolean":
                val = parse_boolean(val) or val
            res[key] = val
        elif "=" not in part:
            if default_key:
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}\n")
            for key, schema in fmt.items():
                if schema.get("default_key"):
                    default_key = key
                    if res.get(key) in (None, "", "0"):
                        res[key] = part
                        break
                    raise FormatError(f"duplicate key in comma-separated list property: {default_key}\n")
            if not default_key:
                raise FormatError("value without key, but schema does not define a default key\n")
        else:
            raise FormatError("missing key in comma-separated list property\n")
    return res


def parse_property_string(fmt: dict[str, Schema], data: str, path: str, version: str) -> dict[str, str]:
    res = split_property_string(fmt, data)
    errors: Errors = {}
    check_object(path, fmt, res, 0, errors, version)
    if errors:
        # PVE::Exception stringification: message line, then one `key: error` line per error.
        raise FormatError("format error\n" + "".join(f"{k}: {v}\n" for k, v in sorted(errors.items())))
    return res
