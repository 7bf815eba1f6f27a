"""Load and validate a site file: YAML -> typed model -> cross-checks, with precise error locations."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from provisioner.errors import SiteError, SiteProblem
from provisioner.paths import inventories_dir
from provisioner.site.checks import check_site
from provisioner.site.model import BACKEND_MODELS, PATTERN_HELP, LxcSettings, Site
from provisioner.site.vocabulary import BACKENDS
from provisioner.site.yamlsource import KeyPath, YamlInputError, YamlSource, format_path, load_yaml


@dataclass(frozen=True)
class LoadedSite:
    model: Site
    path: Path  # the site.yml

    @property
    def name(self) -> str:
        return self.model.site

    @property
    def directory(self) -> Path:
        return self.path.parent


def resolve_site_path(ref: str | None) -> Path:
    """A site reference is a path to a site file, a directory holding site.yml, or a name under inventories/."""
    ref = ref or os.environ.get("PROVISION_SITE")
    if not ref:
        candidates = sorted(p.parent.name for p in inventories_dir().glob("*/site.yml"))
        if len(candidates) == 1:
            ref = candidates[0]
        else:
            raise SiteError(
                [
                    SiteProblem(
                        "(command line)", None, "SITE", f"name a site; allowed: {', '.join(candidates) or 'none'}"
                    )
                ]
            )
    path = Path(ref)
    if path.is_dir():
        path = path / "site.yml"
    elif not path.exists() and "/" not in ref and not ref.endswith((".yml", ".yaml")):
        path = inventories_dir() / ref / "site.yml"
    if not path.is_file():
        known = sorted(p.parent.name for p in inventories_dir().glob("*/site.yml"))
        raise SiteError(
            [SiteProblem(str(path), None, "", f"no such site file; known sites: {', '.join(known) or 'none'}")]
        )
    return path


def load_site(ref: str | Path | None, today: dt.date | None = None) -> LoadedSite:
    path = resolve_site_path(str(ref) if ref is not None else None)
    display = _display_name(path)
    try:
        source = load_yaml(path, display)
    except YamlInputError as exc:
        raise SiteError([SiteProblem(display, exc.line, format_path(exc.path), exc.message)]) from None
    except OSError as exc:
        raise SiteError([SiteProblem(display, None, "", f"cannot read the site file: {exc.strerror}")]) from None
    if not isinstance(source.data, dict):
        raise SiteError(
            [
                SiteProblem(
                    display,
                    1,
                    "",
                    "this file holds no mapping of keys; allowed: a mapping with the keys "
                    + ", ".join(f.alias or n for n, f in Site.model_fields.items()),
                )
            ]
        )
    try:
        model = Site.model_validate(source.data)
    except ValidationError as exc:
        raise SiteError(_pydantic_problems(exc, source)) from exc
    problems = [
        SiteProblem(display, source.line_of(path_), format_path(path_), message)
        for path_, message in check_site(model, today)
    ]
    if problems:
        raise SiteError(problems)
    return LoadedSite(model=model, path=path.resolve())


def _display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _pydantic_problems(exc: ValidationError, source: YamlSource) -> list[SiteProblem]:
    problems = []
    for error in exc.errors():
        loc = _file_loc(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(Site, loc[:-1], source.data)
            message = f"unknown key '{loc[-1]}'; allowed keys here: {', '.join(allowed)}"
        elif kind == "missing":
            allowed = _allowed_keys(Site, loc[:-1], source.data)
            message = "this key is required" + (f"; allowed keys here: {', '.join(allowed)}" if allowed else "")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "type")
            given = error.get("ctx", {}).get("tag")
            message = f"unknown backend type '{given}'" if given else "the backend needs a type"
            message += f"; allowed: {', '.join(BACKENDS)}"
        else:
            message = _describe(error)
        problems.append(SiteProblem(source.file, source.line_of(loc), format_path(loc), message))
    return problems


def _file_loc(loc: tuple[Any, ...]) -> KeyPath:
    """Pydantic's location as the key path in the file: YAML key names, without the backend union's tag."""
    parts: list[str | int] = [_yaml_key(part) for part in loc if part != "[key]"]  # a mapping key's own check
    if len(parts) > 1 and parts[0] == "backend" and parts[1] in BACKENDS:
        del parts[1]
    return tuple(parts)


def _shown(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."


# What each kind of type error allows, said for a person editing YAML.
_ALLOWED_BY_KIND = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text (put it in quotes)",
    "list_type": "a list, such as [a, b]",
    "dict_type": "a mapping of keys and values",
    "model_type": "a mapping of keys and values",
    "model_attributes_type": "a mapping of keys and values",
    "ip_v4_address": "an IPv4 address such as 10.0.0.1",
    "ip_v4_network": "an IPv4 network such as 10.0.1.0/24, with no host bits set",
    "date_type": "a date YYYY-MM-DD",
    "date_parsing": "a date YYYY-MM-DD",
    "date_from_datetime_parsing": "a date YYYY-MM-DD",
    "date_from_datetime_inexact": "a date YYYY-MM-DD, without a time",
}


def _count(number: Any, bound: str) -> str:
    return f"{bound} {number} item" + ("" if number == 1 else "s")


def _describe(error: Any) -> str:
    kind, ctx, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return f"{_shown(given)} is not allowed; allowed: {PATTERN_HELP.get(pattern, pattern)}"
    if kind == "literal_error":
        return f"{_shown(given)} is not allowed; allowed: {ctx.get('expected', '')}"
    if kind in _ALLOWED_BY_KIND:
        return f"{_shown(given)} is not allowed; allowed: {_ALLOWED_BY_KIND[kind]}"
    bounds = {
        "greater_than_equal": f"at least {ctx.get('ge')}",
        "greater_than": f"more than {ctx.get('gt')}",
        "less_than_equal": f"at most {ctx.get('le')}",
        "less_than": f"less than {ctx.get('lt')}",
        "too_short": _count(ctx.get("min_length"), "at least"),
        "too_long": _count(ctx.get("max_length"), "at most"),
        "string_too_short": f"at least {ctx.get('min_length')} characters",
        "string_too_long": f"at most {ctx.get('max_length')} characters",
    }
    if kind in bounds:
        if kind.startswith("string_"):
            return f"the text is {len(str(given))} characters long; allowed: {bounds[kind]}"
        if kind.startswith("too_"):
            return f"there are {len(given) if isinstance(given, list | dict) else '?'} items; allowed: {bounds[kind]}"
        return f"{_shown(given)} is out of range; allowed: {bounds[kind]}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message if "allowed" in message else f"{message}; allowed: see 'The site file' in the README"


def _yaml_key(part: Any) -> str | int:
    return {"from_env": "from", "to_env": "to"}.get(part, part) if isinstance(part, str) else part


def _allowed_keys(model: type[BaseModel], loc: KeyPath, data: Any) -> list[str]:
    """The keys the model allows at `loc` (walking through nested models and lists, and the backend's type)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        if current is Site and part == "backend":
            kind = data.get("backend", {}).get("type") if isinstance(data.get("backend"), dict) else None
            current = BACKEND_MODELS.get(kind, LxcSettings)
            continue
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
