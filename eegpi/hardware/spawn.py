"""A spawned child process that imports only what its target needs, and nothing else runs.

``multiprocessing``'s ``spawn`` start method does two things the acquisition process does not
want. It re-runs the parent's ``__main__`` in the child (the parent's whole import graph when
that is a program rather than the ``eegpi`` command, and a crash when that program has no
``if __name__ == "__main__"`` guard), and it starts a resource-tracker process (an interpreter
of its own, 12 MB) so that named segments and semaphores are unlinked after a crash. The
acquisition process and the daemon unlink their names themselves as soon as both hold them
(:mod:`eegpi.hardware.shm`), so the tracker has nothing to do.

:class:`LightProcess` is ``multiprocessing``'s spawn ``Process`` (same API, same
``spawn_main`` command line, same pickling of pipes and of the target's arguments) without those
two steps.
"""

from __future__ import annotations

import io
import os
from multiprocessing import popen_spawn_posix, process, reduction, spawn, util
from multiprocessing.context import set_spawning_popen
from typing import Any

__all__ = ["LightProcess"]

_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


class _LightPopen(popen_spawn_posix.Popen):
    """``popen_spawn_posix.Popen`` minus the resource tracker and the parent's ``__main__``."""

    _fds: list[int]

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        for key in _MAIN_KEYS:
            prep_data.pop(key, None)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            cmd = spawn.get_command_line(pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            exe = spawn.get_executable()
            self.pid = util.spawnv_passfds(exe, cmd, self._fds)  # type: ignore[arg-type]
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        finally:
            self.finalizer = util.Finalize(
                self, _close_fds, ([fd for fd in (parent_r, parent_w) if fd is not None],)
            )
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)


class LightProcess(process.BaseProcess):
    """A spawned ``Process`` whose child imports only its target's modules (see module doc).

    Whatever the target creates with ``multiprocessing``'s own named resources
    (``SharedMemory``, ``Lock``) would start a tracker in the child: use
    :mod:`eegpi.hardware.shm` instead.
    """

    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _LightPopen(process_obj)
