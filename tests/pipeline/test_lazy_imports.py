"""Loading pipelines never imports scipy.signal, nor does opening and running a filter
(eegpi/lazy.py, eegpi/pipeline/stages/kernel.py); decimate imports it when it opens."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from eegpi.lazy import LazyModule, preload

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_validating_every_shipped_pipeline_leaves_scipy_signal_unimported() -> None:
    out = _run(
        """
        import sys
        from pathlib import Path
        from eegpi.pipeline.spec import load_pipeline_file
        names = [load_pipeline_file(p).name for p in sorted(Path("pipelines").glob("*.yaml"))]
        assert "default" in names, names
        print("scipy.signal" in sys.modules)
        """
    )
    assert out == "False"


def test_a_filter_opens_and_filters_as_scipy_does_without_importing_scipy_signal() -> None:
    out = _run(
        """
        import sys
        import numpy as np
        from eegpi.pipeline.stages.filters import Bandpass, BandpassParams
        from eegpi.pipeline.stage import NullPublisher, StageContext
        from eegpi.hardware.config import DeviceConfig
        from eegpi.stream import Block, StreamMeta
        assert "scipy.signal" not in sys.modules
        stage = Bandpass("f", BandpassParams(low_hz=1.0, high_hz=40.0, order=4))
        meta = StreamMeta(sample_rate=250, channels=("a", "b"), units="uV")
        stage.open({"in": meta}, StageContext("p", DeviceConfig(backend="mock"), NullPublisher()))
        x = np.random.default_rng(1).standard_normal((100, 2))
        y = stage.process({"in": Block(x, 0, 0.0, meta)})["out"].data
        imported = "scipy.signal" in sys.modules
        from scipy import signal
        zi = signal.sosfilt_zi(stage.sos)[:, :, None] * x[0]
        ref, _ = signal.sosfilt(stage.sos, x, axis=0, zi=zi)
        print(imported, float(np.max(np.abs(y - ref))))
        """
    )
    imported, err = out.split()
    assert imported == "False"
    assert float(err) == 0.0


def test_filtering_the_default_chain_never_imports_scipy_signal_and_scipy_can_follow() -> None:
    """In a fresh interpreter: the default pipeline's filters run without scipy.signal; a later
    ``import scipy.signal`` (decimate, band_power) reuses the kernel already loaded, and both
    give the same output."""
    out = _run(
        """
        import sys
        import numpy as np
        from eegpi.pipeline.stages.design import butter_sos, notch_sos
        from eegpi.pipeline.stages.kernel import KERNEL_MODULE
        from eegpi.pipeline.stages.sos import SosState, compiled_kernel

        sos = np.vstack([butter_sos(4, (1.0, 40.0), "bandpass", 250.0),
                         notch_sos(50.0, 30.0, 250.0)])
        x = np.random.default_rng(7).normal(size=(500, 8)) * 50 + 300
        state = SosState(sos, 8)
        y = np.vstack([state.apply(x[i:i + 3]) for i in range(0, 500, 3)])
        assert compiled_kernel()
        assert "scipy.signal" not in sys.modules, "filtering imported scipy.signal"
        kernel = sys.modules[KERNEL_MODULE]

        from scipy import signal
        assert sys.modules[KERNEL_MODULE] is kernel
        zi = signal.sosfilt_zi(sos)[:, :, np.newaxis] * x[0]
        expected, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
        assert np.array_equal(y, expected), np.abs(y - expected).max()
        print("ok")
        """
    )
    assert out == "ok"


def test_opening_a_decimate_stage_imports_scipy_signal() -> None:
    out = _run(
        """
        import sys
        from eegpi.pipeline.stages.filters import Decimate, DecimateParams
        from eegpi.pipeline.stage import NullPublisher, StageContext
        from eegpi.hardware.config import DeviceConfig
        from eegpi.stream import StreamMeta
        stage = Decimate("d", DecimateParams(factor=2))
        meta = StreamMeta(sample_rate=250, channels=("a",), units="uV")
        before = "scipy.signal" in sys.modules
        stage.open({"in": meta}, StageContext("p", DeviceConfig(backend="mock"), NullPublisher()))
        print(before, "scipy.signal" in sys.modules)
        """
    )
    assert out == "False True"


def test_lazy_module_imports_on_first_attribute() -> None:
    lazy = LazyModule("json")
    assert "not imported" in repr(lazy)
    assert lazy.dumps([1]) == "[1]"
    assert "imported" in repr(lazy) and "not" not in repr(lazy)


def test_preload_imports_in_the_background_and_skips_what_is_loaded() -> None:
    assert preload(["json"]) is None  # already imported: no thread
    thread = preload(["eegpi.pipeline.stages.sos", "no_such_module_anywhere"])
    if thread is not None:  # a missing module is left to the stage that needs it
        thread.join(60)
        assert not thread.is_alive()
    assert "eegpi.pipeline.stages.sos" in sys.modules


def test_preload_runs_a_loader_named_module_colon_function() -> None:
    out = _run(
        """
        import sys
        from eegpi.lazy import preload
        from eegpi.pipeline.stages import kernel
        thread = preload(["eegpi.pipeline.stages.kernel:sosfilt"])
        thread.join(60)
        print(kernel.KERNEL_MODULE in sys.modules, "scipy.signal" in sys.modules)
        """
    )
    assert out == "True False"
