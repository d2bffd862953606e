"""Pipeline descriptions: YAML in, a validated, topologically ordered spec out.

Everything that can be checked without touching hardware is checked here, and every error names
the file, the stage and the field, so a user can fix the YAML without reading code:

* YAML syntax (with line and column), duplicate keys, the size limits of
  :mod:`eegpi.safe_yaml` and :data:`MAX_STAGES`, document shape, unknown keys;
* stage names (present, unique), types (registered), params (known fields, required fields,
  basic types, then the stage's own value checks);
* inputs (existing stage, existing output port, as many as the stage has input ports);
* cycles (the stages on the cycle are listed), exactly one source, duplicate topics.

Checks that need the stream's metadata (a cut-off above Nyquist, say) run when the pipeline
opens, before any sample flows.
"""

from __future__ import annotations

import dataclasses
import graphlib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eegpi.exc import ConfigError
from eegpi.pipeline import registry
from eegpi.pipeline.stage import SourceStage, Stage
from eegpi.safe_yaml import MAX_ERROR_VALUE_CHARS, clip_message, load_yaml_file, short_repr

__all__ = [
    "MAX_STAGES",
    "InputRef",
    "PipelineSpec",
    "StageSpec",
    "load_pipeline_file",
    "parse_pipeline",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_PIPELINE_KEYS = {"name", "description", "stages"}
_STAGE_KEYS = {"name", "type", "params", "inputs"}
MAX_STAGES = 256
"""Stages in one pipeline; real ones have a handful, and every stage costs a thread's time."""


@dataclass(frozen=True)
class InputRef:
    """One input of a stage: the producing stage and its output port."""

    stage: str
    port: str

    def __str__(self) -> str:
        return f"{self.stage}.{self.port}"


@dataclass(frozen=True)
class StageSpec:
    name: str
    type_name: str
    params: Any
    """The stage's ``Params`` instance, already validated."""
    inputs: tuple[InputRef, ...]
    cls: type[Stage]

    def instantiate(self) -> Stage:
        return self.cls(self.name, self.params)


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    path: str
    description: str
    stages: tuple[StageSpec, ...]
    """In execution (topological) order; the source first."""

    @property
    def source(self) -> StageSpec:
        return self.stages[0]

    @property
    def topics(self) -> tuple[str, ...]:
        out = []
        for st in self.stages:
            if st.cls.topic_param is not None:
                out.append(str(getattr(st.params, st.cls.topic_param)))
        return tuple(out)

    @property
    def claims_device(self) -> bool:
        return any(issubclass(st.cls, SourceStage) and st.cls.claims_device for st in self.stages)


def load_pipeline_file(path: str | Path) -> PipelineSpec:
    """Read and validate one pipeline file; ConfigError names file, stage and field.

    Safe on hostile files (see :mod:`eegpi.safe_yaml`): bounded in size, time, memory and
    error length.
    """
    p = Path(path)
    doc = load_yaml_file(p, "pipeline file")
    try:
        return parse_pipeline(doc, str(p))
    except ConfigError as exc:
        raise ConfigError(clip_message(str(exc))) from None


def parse_pipeline(doc: Any, path: str = "<pipeline>") -> PipelineSpec:
    """Validate a parsed YAML document (see the module docstring for what is checked)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a pipeline must be a mapping with 'name' and 'stages'")
    unknown = set(doc) - _PIPELINE_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {_fmt(unknown)} at top level; allowed: {_fmt(_PIPELINE_KEYS)}"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"{path}: 'name' must be a word of letters, digits, '_' or '-' (got {short_repr(name)})"
        )
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{path}: 'description' must be a string")
    raw_stages = doc.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ConfigError(f"{path}: 'stages' must be a non-empty list of stages")
    if len(raw_stages) > MAX_STAGES:
        raise ConfigError(
            f"{path}: {len(raw_stages)} stages; a pipeline may have at most {MAX_STAGES}"
        )

    parsed: dict[str, StageSpec] = {}
    for index, raw in enumerate(raw_stages):
        st = _parse_stage(raw, index, path)
        if st.name in parsed:
            raise ConfigError(f"{path}: stage '{st.name}': duplicate stage name")
        parsed[st.name] = st

    for st in parsed.values():
        _check_inputs(st, parsed, path)

    order = _toposort(parsed, path)
    sources = [s for s in order if issubclass(s.cls, SourceStage)]
    if len(sources) != 1:
        found = ", ".join(f"'{s.name}'" for s in sources) or "none"
        raise ConfigError(f"{path}: a pipeline needs exactly one source stage (found {found})")

    spec = PipelineSpec(name=name, path=path, description=description, stages=tuple(order))
    seen: dict[str, str] = {}
    for st in parsed.values():  # file order, so the second mention is the one reported
        if st.cls.topic_param is None:
            continue
        topic = str(getattr(st.params, st.cls.topic_param))
        if topic in seen:
            raise ConfigError(
                f"{path}: stage '{st.name}': topic {short_repr(topic)} is already published by "
                f"stage '{seen[topic]}'"
            )
        seen[topic] = st.name
    return spec


def _parse_stage(raw: Any, index: int, path: str) -> StageSpec:
    where = f"{path}: stages[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each stage must be a mapping with 'name' and 'type'")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{where}: 'name' must be a word of letters, digits, '_' or '-'")
    where = f"{path}: stage '{name}'"
    unknown = set(raw) - _STAGE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {_fmt(unknown)}; allowed: {_fmt(_STAGE_KEYS)}")
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        raise ConfigError(f"{where}: 'type' is required (a stage type name)")
    try:
        cls = registry.lookup(type_name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: field 'type': {exc}") from None
    where = f"{path}: stage '{name}' ({type_name})"

    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        raise ConfigError(f"{where}: 'params' must be a mapping")
    params = build_params(cls, params_raw, where)

    inputs_raw = raw.get("inputs", [])
    if isinstance(inputs_raw, str):
        inputs_raw = [inputs_raw]
    if not isinstance(inputs_raw, list) or not all(isinstance(i, str) for i in inputs_raw):
        raise ConfigError(
            f"{where}: 'inputs' must be a list of stage names ('stage' or 'stage.port')"
        )
    inputs = []
    for ref in inputs_raw:
        stage, _, port = ref.partition(".")
        inputs.append(InputRef(stage, port))
    return StageSpec(name=name, type_name=type_name, params=params, inputs=tuple(inputs), cls=cls)


def build_params(cls: type[Stage], raw: Mapping[str, Any], where: str) -> Any:
    """Build ``cls.Params`` from YAML, with errors naming the field and what is allowed."""
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    unknown = set(raw) - set(fields)
    if unknown:
        allowed = _fmt(fields) if fields else "none"
        raise ConfigError(f"{where}: unknown param(s) {_fmt(unknown)}; allowed params: {allowed}")
    missing = [
        n
        for n, f in fields.items()
        if n not in raw
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required param(s) {_fmt(missing)}")
    hints = typing.get_type_hints(cls.Params)
    values = {}
    for key, value in raw.items():
        values[key] = _coerce(value, hints.get(key), f"{where}: param '{key}'")
    try:
        return cls.Params(**values)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        field = next(
            (k for k in fields if msg.startswith(f"{k}:") or msg.startswith(f"{k} ")), None
        )
        prefix = f"{where}: param '{field}'" if field else f"{where}: params"
        if field:
            msg = msg[len(field) :].lstrip(": ")
        # A stage may quote the offending value in full; keep what precedes and follows it.
        raise ConfigError(f"{prefix}: {clip_message(msg, 2 * MAX_ERROR_VALUE_CHARS)}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check the simple scalar types (int, float, str, bool); leave the rest to the stage."""
    if hint is None:
        return value
    allowed = _scalar_types(hint)
    if allowed is None:
        return value
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int) and (int in allowed or float in allowed):
        return value if int in allowed else float(value)
    elif (isinstance(value, float) and float in allowed) or (
        isinstance(value, str) and str in allowed
    ):
        return value
    names = " or ".join(sorted("null" if t is type(None) else t.__name__ for t in allowed))
    raise ConfigError(f"{where}: expected {names}, got {short_repr(value)}")


def _scalar_types(hint: Any) -> set[type] | None:
    scalars = {int, float, str, bool, type(None)}
    if hint in scalars:
        return {hint}
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = set(typing.get_args(hint))
        if args <= scalars:
            return args
    return None


def _check_inputs(st: StageSpec, stages: Mapping[str, StageSpec], path: str) -> None:
    where = f"{path}: stage '{st.name}' ({st.type_name})"
    want = len(st.cls.input_ports)
    if len(st.inputs) != want:
        if want == 0:
            raise ConfigError(f"{where}: field 'inputs': a source stage takes no inputs")
        ports = ", ".join(st.cls.input_ports)
        raise ConfigError(
            f"{where}: field 'inputs': needs {want} input(s) ({ports}), got {len(st.inputs)}"
        )
    resolved = []
    for ref in st.inputs:
        producer = stages.get(ref.stage)
        if producer is None:
            raise ConfigError(
                f"{where}: field 'inputs': unknown input stage '{ref.stage}'; "
                f"stages are: {_fmt(stages)}"
            )
        outs = producer.cls.output_ports
        if not outs:
            raise ConfigError(f"{where}: field 'inputs': stage '{ref.stage}' has no outputs")
        port = ref.port or outs[0]
        if port not in outs:
            raise ConfigError(
                f"{where}: field 'inputs': stage '{ref.stage}' has no output port '{port}'; "
                f"its ports: {', '.join(outs)}"
            )
        resolved.append(InputRef(ref.stage, port))
    object.__setattr__(st, "inputs", tuple(resolved))


def _toposort(stages: Mapping[str, StageSpec], path: str) -> list[StageSpec]:
    graph = {name: {ref.stage for ref in st.inputs} for name, st in stages.items()}
    sorter = graphlib.TopologicalSorter(graph)
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise ConfigError(f"{path}: the stages form a cycle: {' -> '.join(cycle)}") from None
    return [stages[n] for n in order]


def _fmt(names: Any) -> str:
    return ", ".join(f"'{n}'" for n in sorted(names))
