"""The engine: a run's state, the step, the loop, and runs trained together on the stacked engine.

Modules: `device` (device and threads), `stopping` (signals, divergence), `progress` (how epochs are shown),
`diagnostics` (per-layer signals), `fused` (the written-out step), `distributed` (the data-parallel group),
`stacked` and `stacked_optim` (K same-shaped models as one, and their optimizers), `state` (a run's parts,
start and resume), `steps` (the step chosen once per run), `loop` (epochs to the finish), `stacked_runs` (runs
of one shape trained at once), `run_groups` (several runs: started, grouped, cut to memory, trained).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.resources, nntrain.config, nntrain.data,
nntrain.model, nntrain.runs.
"""
