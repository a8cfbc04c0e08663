"""Eq. 3 weighted per example (Keras sample weights), the second reading of
Fig. 13's "weighting the rate-distortion equation": batches (x, None, w)
give L = mean(w·(R + λ·D)), checked against quantities computed outside the
model."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_perception import models


def _logged(model, *batch):
  data = tf.data.Dataset.from_tensors(batch)
  return model.evaluate(data, verbose=0, return_dict=True)


def test_sample_weights_weight_rate_and_distortion():
  lmbda = 3.0
  model = models.build_model("toy2d", lmbda=lmbda, widths=8, depth=1, seed=0)
  model.compile(optimizer="sgd")
  x = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
  w = np.linspace(0.1, 3.0, 64).astype(np.float32)
  x_hat, bits = model(x, training=False)
  bits = np.asarray(bits, np.float64)
  sse = np.sum((np.asarray(x_hat, np.float64) - x) ** 2, axis=1)
  assert np.ptp(bits) > 0 and np.ptp(sse) > 0  # The weights matter.
  weighted = _logged(model, x, None, w)
  assert weighted["rate"] == pytest.approx(np.mean(w * bits), rel=1e-5)
  assert weighted["distortion"] == pytest.approx(np.mean(w * sse), rel=1e-5)
  assert weighted["loss"] == pytest.approx(
      np.mean(w * (bits + lmbda * sse)), rel=1e-5)
  # Unit weights, a (x, y) pair and x alone all give the unweighted Eq. 3.
  plain = _logged(model, x)
  assert plain["loss"] == pytest.approx(np.mean(bits + lmbda * sse),
                                        rel=1e-5)
  for batch in ((x, None, np.ones(64, np.float32)), (x, x)):
    assert _logged(model, *batch)["loss"] == pytest.approx(plain["loss"],
                                                           rel=1e-6)


def test_a_zero_weight_removes_an_example_from_the_gradient():
  model = models.build_model("toy2d", lmbda=1.0, widths=8, depth=1, seed=1)
  model.compile(optimizer=tf.keras.optimizers.SGD(0.1))
  x = np.array([[0.3, -0.2], [4.0, 4.0]], np.float32)
  before = [v.numpy() for v in model.analysis_transform.trainable_variables]
  model.fit(tf.data.Dataset.from_tensors((x, None, np.zeros(2, np.float32))),
            verbose=0)
  after = [v.numpy() for v in model.analysis_transform.trainable_variables]
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)
