"""YAML files we load (the lab, device profiles, sign-off criteria) as validated pydantic models.

A typo must not become a station that silently lacks its camera: every error names the file, the line and
the field (from the YAML node marks), and a key given twice is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hil.errors import ConfigError


class Strict(BaseModel):
    """A model of a file: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Follow a pydantic error location through the YAML node tree, as deep as it goes."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(key)), None)
            if nxt is None:  # unknown key: point at the key itself
                nxt = next((k for k, _ in node.value if k.value == str(key)), None)
                return nxt or node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice is an error (PyYAML keeps the last one silently) and an
    integer too long for Python is a YAML error at its line, not a ValueError traceback."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in getattr(node, "value", ()):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} characters is too long; write at most 4300 digits",
                node.start_mark) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """A YAML file we load (lab, profile, criteria) as data and its node tree; every flaw a ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror}); check the path") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the file as UTF-8") from None
    loader = None
    try:
        loader = _StrictLoader(text)
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; flatten the file") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_model(path: Path, model: type[BaseModel], **extra: Any) -> Any:
    data, root = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            node = _node_at(root, err["loc"])
            line = node.start_mark.line + 1 if node is not None else 1
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown field (typo?)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{path}:{line}: {field}: {msg}")
        raise ConfigError("\n".join(lines)) from None

