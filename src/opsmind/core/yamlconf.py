"""YAML files validated by pydantic models, with errors that name the file, the line and the field path.

Used by the engine configuration and by remediation playbooks: one way to say where a file is wrong.

>>> from pydantic import BaseModel
>>> class M(BaseModel):
...     port: int
>>> try:
...     load_model_text("a:\\n  b: 1\\nport: eighty\\n", M, where="cfg.yaml")
... except ConfigError as exc:
...     print(exc)
cfg.yaml:3: port: Input should be a valid integer, unable to parse string as an integer (got 'eighty')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from opsmind.core.errors import ConfigError

__all__ = ["field_path", "line_of", "load_model", "load_model_text", "parse_yaml"]

M = TypeVar("M", bound=BaseModel)


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, where: str) -> tuple[Any, yaml.Node | None]:
    """The YAML document as Python data, and its node tree (for line numbers). ``ConfigError`` on bad YAML.

    The text is parsed once (libyaml's parser when PyYAML has it); nesting deep enough to exhaust the recursion
    limit is bad YAML too, not a crash."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node of ``loc`` that exists in the tree (the file's first line if none)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(key)), None)
            if nxt is None:
                break
            # point at the key when the value spans lines (a mapping or a list)
            line = nxt.start_mark.line + 1
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def field_path(loc: Sequence[str | int]) -> str:
    """``("services", 0, "slo", "latency_ms")`` -> ``services[0].slo.latency_ms``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _first_error(exc: ValidationError) -> tuple[tuple[str | int, ...], str, Any]:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    return loc, err["msg"], err.get("input")


def load_model_text(text: str, model: type[M], *, where: str = "<config>",
                    build: Callable[[dict[str, Any]], M] | None = None) -> M:
    """Validate the YAML ``text`` as ``model`` (or with ``build(data)``); ``ConfigError`` names file:line: field."""
    data, node = parse_yaml(text, where)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}:1: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return build(data) if build is not None else model.model_validate(data)
    except ValidationError as exc:
        loc, msg, value = _first_error(exc)
        line = line_of(node, loc)
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
        more = exc.error_count() - 1
        tail = f" [and {more} more error{'s' if more > 1 else ''}]" if more > 0 else ""
        raise ConfigError(f"{where}{f':{line}' if line else ''}: {field_path(loc)}: {msg}{shown}{tail}") from None


def load_model(path: Path | str, model: type[M], *, build: Callable[[dict[str, Any]], M] | None = None) -> M:
    """Read and validate a YAML file (``ConfigError`` naming the file when it cannot be read)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    return load_model_text(text, model, where=str(p), build=build)
