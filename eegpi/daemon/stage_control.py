"""The WebSocket side of live parameters: ``get_params`` and ``update_stage`` over the manager.

The same manager calls as the gRPC ``GetStatus`` and ``UpdateStage``, so both ways get the same
validation and the same messages; only the shape of the reply is the WebSocket protocol's.
"""

from __future__ import annotations

from typing import Any

from eegpi.daemon.manager import PipelineManager
from eegpi.status import StageParams

__all__ = ["ManagerStageControl"]


def _stage_json(stage: StageParams) -> dict[str, Any]:
    return {
        "name": stage.name,
        "type": stage.type_name,
        "params": stage.params,
        "live": list(stage.live),
    }


class ManagerStageControl:
    """:class:`~eegpi.broker.server.StageControl` for a :class:`PipelineManager`."""

    def __init__(self, manager: PipelineManager) -> None:
        self._manager = manager

    def get_params(self, pipeline: str) -> dict[str, Any]:
        running, stages = self._manager.stage_params(pipeline)
        return {
            "pipeline": pipeline,
            "running": running,
            "stages": [_stage_json(st) for st in stages],
        }

    async def update_stage(
        self, pipeline: str, stage: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        result = await self._manager.update_stage(pipeline, stage, params)
        return {"pipeline": pipeline, "stage": result.name, "params": result.params}
