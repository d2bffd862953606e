"""Reading YAML that anyone on the LAN may have written: bounded, strict, with short errors.

Pipelines arrive through ReloadPipelines and the config through a file the operator edits, so
the reader must survive hostile input without disturbing what runs. Compared with
``yaml.safe_load`` it:

* resolves booleans as YAML 1.2 does: only ``true``/``false`` (``True``, ``TRUE``, ``False``,
  ``FALSE``); ``on``, ``off``, ``yes``, ``no`` stay strings, so ``input: off`` means the off
  input, as documented;
* refuses a file larger than :data:`MAX_FILE_BYTES` before parsing it;
* counts nodes while composing, each alias counting as the whole subtree it stands for, and
  stops at :data:`MAX_NODES` (a 600-byte "billion laughs" file is refused after a few thousand
  nodes instead of expanding into gigabytes); a recursive alias is refused too;
* stops at :data:`MAX_DEPTH` levels of nesting;
* refuses a mapping key that appears twice (``yaml.safe_load`` silently keeps the last one).

Every refusal is a :class:`ConfigError` that starts with ``FILE:LINE:`` where the line is known;
values quoted in errors go through :func:`short_repr`, so no message grows with the input.
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.error import Mark, MarkedYAMLError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from eegpi.exc import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_ERROR_CHARS",
    "MAX_ERROR_VALUE_CHARS",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "clip_message",
    "load_yaml_file",
    "load_yaml_text",
    "short_repr",
]

MAX_FILE_BYTES = 1 << 20
"""1 MiB: a pipeline of the maximum 256 stages, fully commented, is well under 100 KiB."""
MAX_NODES = 50_000
"""Scalars, lists and mappings after alias expansion; 256 full stages make about 10,000."""
MAX_DEPTH = 32
"""Nesting levels; a pipeline needs 6."""
MAX_ERROR_VALUE_CHARS = 200
"""How much of a value an error message may quote."""
MAX_ERROR_CHARS = 1000
"""How long a whole error message may grow (a list of 256 long stage names, say)."""

_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Yaml12BoolResolver(Resolver):
    """PyYAML's resolver with the YAML 1.2 core schema's booleans instead of YAML 1.1's."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in rules if tag != _BOOL_TAG]
        for first, rules in Resolver.yaml_implicit_resolvers.items()
    }


_Yaml12BoolResolver.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _LimitExceeded(MarkedYAMLError):
    """A document beyond one of this module's limits (a YAML error with a position)."""


class _BoundedComposer(Composer):
    """PyYAML's composer, counting expanded nodes and depth, and refusing duplicate keys."""

    def __init__(self) -> None:
        super().__init__()
        self._nodes = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}
        """Expanded size of every finished node, by id (the nodes live as long as the tree)."""

    def _count(self, n: int, mark: Mark | None) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise _LimitExceeded(
                problem=f"more than {MAX_NODES} values (aliases count as what they repeat)",
                problem_mark=mark,
            )

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):  # type: ignore[attr-defined]
            event = self.peek_event()  # type: ignore[attr-defined]
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is the parent's error to report
                size = self._sizes.get(id(target))
                if size is None:
                    raise _LimitExceeded(
                        problem=f"alias *{event.anchor} refers to a node that contains it",
                        problem_mark=event.start_mark,
                    )
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()  # type: ignore[attr-defined]
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LimitExceeded(
                problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark
            )
        self._count(1, event.start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        assert node is not None
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._sizes[id(item)] for item in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
            self._check_duplicate_keys(node)
        else:
            size = 1
        self._sizes[id(node)] = size
        return node

    def _check_duplicate_keys(self, node: MappingNode) -> None:
        first: dict[Any, ScalarNode] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                continue
            ident = self._key_identity(key)
            seen = first.get(ident)
            if seen is not None:
                raise _LimitExceeded(
                    problem=f"key {short_repr(key.value)} appears twice "
                    f"(first on line {seen.start_mark.line + 1})",
                    problem_mark=key.start_mark,
                )
            first[ident] = key

    def _key_identity(self, key: ScalarNode) -> Any:
        """What the key becomes in the dict, so ``1`` and ``0x1`` collide as they would there."""
        if key.tag == _STR_TAG:
            return key.value
        try:
            value = self.construct_object(key)  # type: ignore[attr-defined]
            hash(value)
        except (yaml.YAMLError, TypeError, ValueError):
            return (key.tag, key.value)
        return value


class _PyLoader(Reader, Scanner, Parser, _BoundedComposer, SafeConstructor, _Yaml12BoolResolver):
    """All in Python: the fallback when PyYAML was built without libyaml."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)
        SafeConstructor.__init__(self)
        _Yaml12BoolResolver.__init__(self)


_Loader: type[_PyLoader] | type[_CLoader]
if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _CLoader(_BoundedComposer, CParser, SafeConstructor, _Yaml12BoolResolver):
        """libyaml scans and parses (in C, 5x faster); composing stays in Python to be counted."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            _Yaml12BoolResolver.__init__(self)

    _Loader = _CLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _Loader = _PyLoader


def load_yaml_text(text: str, name: str) -> Any:
    """Parse one YAML document; ``name`` (a path) starts every error message."""
    return _load(_Loader, text, name)


def _load(loader_class: type[_PyLoader] | type[_CLoader], text: str, name: str) -> Any:
    loader = None
    try:
        loader = loader_class(text)
        return loader.get_single_data()
    except MarkedYAMLError as exc:
        raise ConfigError(_describe(exc, name)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {_clip(str(exc))}") from None
    except RecursionError:  # a deep structure the depth limit did not see (cannot happen)
        raise ConfigError(f"{name}: invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_file(path: str | Path, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Read and parse a regular file of at most ``max_bytes``; ``what`` names it in errors."""
    p = Path(path)
    try:
        # O_NONBLOCK: a FIFO must not hang the caller before it is found not to be a file.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such {what}") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{p}: cannot read {what}: not a regular file")
        if info.st_size > max_bytes:
            raise ConfigError(
                f"{p}: {_size(info.st_size)} is too large for a {what} (at most {_size(max_bytes)})"
            )
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew after the check
        raise ConfigError(f"{p}: too large for a {what} (at most {_size(max_bytes)})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: cannot read {what}: not UTF-8 text (byte {exc.start})") from None
    return load_yaml_text(text, str(p))


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = MAX_ERROR_VALUE_CHARS
_REPR.maxother = MAX_ERROR_VALUE_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to about :data:`MAX_ERROR_VALUE_CHARS`, in bounded time and memory."""
    return _clip(_REPR.repr(value))


def clip_message(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Cut the middle out of an over-long message: its start says where, its end what."""
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def _clip(text: str) -> str:
    if len(text) <= MAX_ERROR_VALUE_CHARS:
        return text
    return text[: MAX_ERROR_VALUE_CHARS - 3] + "..."


def _describe(exc: MarkedYAMLError, name: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    kind = "" if isinstance(exc, _LimitExceeded) else "invalid YAML: "
    problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "unreadable"
    if mark is not None and not isinstance(exc, _LimitExceeded):
        problem += f" (column {mark.column + 1})"
    return f"{where}: {kind}{_clip(problem)}"


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"
