"""The config stage: what a YAML config may say, read as the user means it, and checked before anything runs.

Modules: `components` (one record per nameable component: activations, inits, losses, optimizers, schedules;
`components_table` writes the README's table from them),
`schema` (the pydantic schema: every key, its type and default), `recipe` (the tabular recipe's defaults),
`checks` (do the parts agree), `locations` (where in the YAML a problem was written), `loading` (YAML,
`base:` chains and KEY=VALUE overrides into a checked `Config`).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.runs.
"""
