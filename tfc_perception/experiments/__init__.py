"""Reproductions of the paper's figures as declarative, cached experiments.

`runner` holds the registry, configs, model cache and report writing (its
docstring documents how to plug in a new experiment); `student_t` holds the
2-D Student-t / uniform experiments (Figs. 2, 4 left, 11-14; issue 6) and
`dae` the denoising-autoencoder experiment (Fig. 9). Run them with
`bin/reproduce EXPERIMENT --config quick|paper --output DIR`.
"""

from tfc_perception.experiments.runner import (  # noqa: F401
    config_hash, get_experiment, list_experiments, register_experiment,
    resolve_names, run_experiment, run_experiments)
