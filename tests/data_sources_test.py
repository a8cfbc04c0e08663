"""Tests of tfc_perception.data.sources: exact densities, seeded streams."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from tfc_perception.data import sources


def test_student_t_density_is_exact():
  dist = sources.student_t_2d()
  x = np.array([[0.0, 0.0], [1.0, -2.0], [6.0, 0.5], [-30.0, 12.0]],
               np.float32)
  expected = scipy.stats.multivariate_t(loc=[0, 0], shape=np.eye(2),
                                        df=3).pdf(x)
  np.testing.assert_allclose(dist.prob(x).numpy(), expected, rtol=1e-5)
  # At the mode of a 2-D Student-t with unit scale the density is 1/(2 pi).
  np.testing.assert_allclose(dist.prob([0.0, 0.0]).numpy(), 1 / (2 * np.pi),
                             rtol=1e-6)


def test_student_t_with_matrix_scale_matches_scipy():
  tril = np.array([[2.0, 0.0], [0.5, 1.0]])
  dist = sources.student_t_2d(df=5.0, loc=(1.0, -1.0), scale=tril)
  x = np.array([[0.3, 0.2], [4.0, -3.0]], np.float32)
  expected = scipy.stats.multivariate_t(loc=[1, -1], shape=tril @ tril.T,
                                        df=5).pdf(x)
  np.testing.assert_allclose(dist.prob(x).numpy(), expected, rtol=1e-5)


def test_student_t_samples_follow_the_marginal_t():
  # The marginal of a multivariate t is a univariate t with the same df.
  x = sources.sample_points("student_t", 4000, seed=7)
  assert x.shape == (4000, 2) and x.dtype == np.float32
  for d in range(2):
    p = scipy.stats.kstest(x[:, d], scipy.stats.t(df=3).cdf).pvalue
    assert p > 1e-3, (d, p)
  # Heavy tails: far more mass beyond 5 than a Gaussian of equal variance.
  assert np.mean(np.abs(x[:, 0]) > 5) > 0.01


def test_uniform_density_and_support():
  dist = sources.uniform_2d()
  np.testing.assert_allclose(
      dist.prob([[0.0, 0.0], [4.9, -4.9], [5.5, 0.0]]).numpy(),
      [0.01, 0.01, 0.0], rtol=1e-6)
  x = sources.sample_points("uniform2d", 2000, seed=1)
  assert x.min() >= -5 and x.max() <= 5
  assert abs(x.mean()) < 0.3
  box = sources.uniform_2d(low=-1.0, high=3.0)
  np.testing.assert_allclose(box.prob([1.0, 1.0]).numpy(), 1 / 16, rtol=1e-6)


def test_source_dataset_is_seeded_and_seekable():
  take = lambda ds, n: [b.numpy() for b in ds.take(n)]
  a = take(sources.source_dataset("student_t", 5, seed=3), 4)
  b = take(sources.source_dataset("student_t", 5, seed=3), 4)
  c = take(sources.source_dataset("student_t", 5, seed=4), 1)
  resumed = take(sources.source_dataset("student_t", 5, seed=3,
                                        start_step=2), 2)
  assert a[0].shape == (5, 2) and a[0].dtype == np.float32
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  assert not np.allclose(a[0], c[0])
  assert not np.allclose(a[0], a[1])
  np.testing.assert_array_equal(resumed[0], a[2])
  np.testing.assert_array_equal(resumed[1], a[3])


def test_density_fn_gives_the_source_density():
  fn = sources.density_fn("student_t")
  x = tf.constant([[0.0, 0.0], [2.0, 2.0]])
  np.testing.assert_allclose(fn(x).numpy(),
                             sources.student_t_2d().prob(x).numpy())
  assert fn(x).dtype == tf.float32 and fn(x).shape == (2,)
  # Fig. 13: the weighting density may differ from the data source.
  weight = sources.density_fn("uniform2d")
  np.testing.assert_allclose(weight(x).numpy(), [0.01, 0.01])


def test_points_dataset_reshuffles_each_pass():
  pts = np.arange(12, dtype=np.float32).reshape(6, 2)
  batches = [b.numpy() for b in sources.points_dataset(pts, 3, seed=1).take(4)]
  first_pass = np.concatenate(batches[:2])
  second_pass = np.concatenate(batches[2:])
  # Each pass is a permutation of all points.
  assert sorted(first_pass[:, 0]) == sorted(pts[:, 0])
  assert sorted(second_pass[:, 0]) == sorted(pts[:, 0])
  resumed = next(iter(sources.points_dataset(pts, 3, seed=1, start_step=3)))
  np.testing.assert_array_equal(resumed.numpy(), batches[3])


@pytest.mark.parametrize("call, message", [
    (lambda: sources.get_source("gaussian"), "Unknown 2-D source"),
    (lambda: sources.student_t_2d(df=0), "df must be"),
    (lambda: sources.student_t_2d(scale=[[1.0, 1.0], [0.0, 1.0]]),
     "lower-triangular"),
    (lambda: sources.student_t_2d(scale=-1.0), "must be > 0"),
    (lambda: sources.uniform_2d(low=1.0, high=1.0), "high must exceed low"),
    (lambda: sources.source_dataset("student_t", 0), "batch_size"),
    (lambda: sources.source_dataset("student_t", 2, start_step=-1),
     "start_step"),
    (lambda: sources.points_dataset(np.array([[0.0, np.nan], [1.0, 2.0]]), 1),
     "1 NaN or Inf"),
    (lambda: sources.points_dataset(np.zeros([4, 2, 2]), 1), r"shape \[N, D\]"),
    (lambda: sources.points_dataset(np.zeros([2, 2]), 3), "fewer than"),
])
def test_bad_input_is_a_clear_error(call, message):
  with pytest.raises(ValueError, match=message):
    call()
