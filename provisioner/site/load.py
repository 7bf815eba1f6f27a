"""Load and validate a site file: YAML -> typed model -> cross-checks, with precise error locations."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from provisioner.errors import SiteError, SiteProblem
from provisioner.paths import inventories_dir
from provisioner.site.checks import check_site
from provisioner.site.model import PATTERN_HELP, Site
from provisioner.site.yamlsource import KeyPath, YamlSource, format_path, load_yaml


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
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SiteError([SiteProblem(display, line, "", f"not valid YAML: {problem}")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteError([SiteProblem(display, None, "", f"cannot read the site file: {exc}")]) from exc
    if not isinstance(source.data, dict):
        raise SiteError(
            [SiteProblem(display, 1, "", "a site file is a mapping with keys such as site, environments, hosts")]
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
        loc: KeyPath = tuple(_yaml_key(part) for part in error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(Site, loc[:-1])
            message = f"unknown key '{loc[-1]}'; allowed keys here: {', '.join(allowed)}"
        elif kind == "missing":
            message = "this key is required"
        elif kind == "string_pattern_mismatch":
            pattern = error.get("ctx", {}).get("pattern", "")
            message = f"'{error['input']}' is not allowed; allowed: {PATTERN_HELP.get(pattern, pattern)}"
        else:
            message = error["msg"].removeprefix("Value error, ")
        problems.append(SiteProblem(source.file, source.line_of(loc), format_path(loc), message))
    return problems


def _yaml_key(part: Any) -> str | int:
    return {"from_env": "from", "to_env": "to"}.get(part, part) if isinstance(part, str) else part


def _allowed_keys(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """The keys the model allows at `loc` (walking through nested models and lists)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
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
