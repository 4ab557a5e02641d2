"""The engine: a run's state, the step, the loop, and runs trained together on the stacked engine.

Modules: `device` (device and threads), `stopping` (signals, divergence), `progress` (how epochs are shown),
`diagnostics` (per-layer signals), `fused` (the written-out step), `distributed` (the data-parallel group),
`stacked` and `stacked_optim` (K same-shaped models as one, and their optimizers), `parts` (model, loss,
optimizer and schedule built), `state` (a run started or resumed), `steps` (the step chosen once per run),
`loop_state` (what every epoch uses), `finish` (test metrics, summary.json, plots), `loop` (the epochs),
`stacked_runs` (runs of one shape trained at once), `run_groups` (several runs: grouped, cut to memory, trained).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.resources, nntrain.config, nntrain.data,
nntrain.model, nntrain.runs.
"""
