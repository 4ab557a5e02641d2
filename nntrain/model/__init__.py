"""The model stage: the network a config describes, built from the config and the fitted preprocessing.

Modules: `activations` (activations torch lacks), `embeddings` (the modules before the first layer), `mlp`
(the MLP and its parameter tables), `memory` (what training it needs against what the machine has), `heads`
(the criterion, outputs -> probabilities or predictions, evaluation).

May import: nntrain.errors, nntrain.metrics, nntrain.plaindata, nntrain.resources, nntrain.runs, nntrain.config,
nntrain.data.
"""
