"""The PyTorch nanoBragg.

Public API (imported lazily, so that ``engine.outputs.trace`` and ``engine.config.defects`` stay cheap to import
for the harness)::

    from engine import run, build_setup, render
    result = run(["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", ...],
                 mode="spec", device="cpu", dtype=torch.float64)
    result.image            # (slow, fast) tensor

    setup = build_setup(argv)             # typed, frozen SimulationSetup (engine.config.model)
    image = render(setup.to("cuda")).image  # any device / dtype; differentiable
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run": "engine.api", "EngineRun": "engine.api",
    "build_setup": "engine.config.setup",
    "render": "engine.render.frame", "render_trace_only": "engine.render.trace_only",
    "RenderResult": "engine.render.result",
    "SimulationSetup": "engine.config.model", "DetectorConfig": "engine.config.model", "BeamConfig": "engine.config.model",
    "CrystalConfig": "engine.config.model", "StructureFactors": "engine.config.model", "SamplingConfig": "engine.config.model",
    "Mode": "engine.config.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
