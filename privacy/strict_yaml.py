"""Reading the YAML/JSON files people write (schemas, policies): safe, strict and bounded.

``yaml.safe_load`` builds no arbitrary objects, but it still takes a duplicate key silently (the
last one wins: a policy with two ``per_release_epsilon`` lines applies the one a reviewer may not
have read), follows aliases into structures whose expanded size is exponential in the file's
("billion laughs": harmless to build, since aliases share one object, but every ``str()`` or walk
over the result expands them), accepts recursive aliases, and raises ``ValueError`` or
``RecursionError`` rather than ``yaml.YAMLError`` for some inputs (a date such as ``2020-13-01``,
very deep nesting). ``load_yaml`` refuses all of these with one ``YamlError``.

Like ``privacy.errors``, this module imports nothing from the project, so that ``policies`` can use it.
"""

from __future__ import annotations

from typing import Any

import yaml

#: the most nodes the document may have once every alias is expanded; a schema with a category
#: list of every US ZIP code (about 42,000) stays far below it
MAX_EXPANDED_NODES = 1_000_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """The text is not a YAML/JSON document this project accepts; the message says why in one line."""


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys in a mapping (merge keys ``<<`` aside)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so with its position
                break
            if duplicate:
                line = key_node.start_mark.line + 1
                raise YamlError(f"duplicate key {_short(key)} (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _expanded_size(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded (a DAG walk, linear in the distinct nodes)."""
    size: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            total = 1
            for child in _children(node):
                total += size[id(child)]
                if total > MAX_EXPANDED_NODES:
                    raise YamlError(f"expands to more than {MAX_EXPANDED_NODES:,} values through aliases")
            size[key] = total
            continue
        if key in size:
            continue
        if key in active:
            raise YamlError("holds a recursive alias (a structure that contains itself)")
        active.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) not in size:
                if id(child) in active:
                    raise YamlError("holds a recursive alias (a structure that contains itself)")
                stack.append((child, False))
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str) -> Any:
    """Parse one YAML (or JSON) document; ``YamlError`` with a one-line reason for anything refused."""
    try:
        loader = _StrictLoader(text)  # the reader refuses control characters here already
    except yaml.YAMLError:
        raise YamlError("holds characters YAML does not allow (NUL or other control characters)") from None
    try:
        node = loader.get_single_node()  # type: ignore[no-untyped-call]
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)  # type: ignore[no-untyped-call]
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        where = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark is not None else ""
        raise YamlError(f"{exc.problem or exc.context or 'syntax error'}{where}") from None
    except yaml.YAMLError:
        raise YamlError("not valid YAML/JSON") from None
    except RecursionError:
        raise YamlError("nested too deeply") from None
    except (ValueError, TypeError, OverflowError):
        # PyYAML's own constructors: a date such as 2020-13-01, a timestamp out of range
        raise YamlError("holds a value YAML cannot read (a date such as 2020-13-01?)") from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
