"""Evaluations behind bin/evaluate: agreement with human opinion (`iqa`,
Observation 5 / Fig. 3 of Hepburn et al. 2022) and rate-distortion (`rd`).

Import the submodules directly (`from tfc_perception.evaluation import iqa`);
they load TensorFlow and the models lazily.
"""
