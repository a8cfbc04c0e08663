"""Fig. 9 (appendix): the deviation of denoising autoencoders and the score.

For each 1-D PDF (a Gaussian, then heavier-tailed models of natural-image
coefficients: Laplace, Student-t, a Gaussian scale mixture; all from
tensorflow-probability) a small dense DAE (tfc_perception.models.dae) is
trained with Gaussian corruption of standard deviation σ. On a grid across the
support we compare

  (a) |r(x) − x|, the deviation the trained DAE introduces,
  (b) σ²·|∂log p(x)/∂x|, the scaled score, exact via the tfp density and
      automatic differentiation (Alain & Bengio's small-noise limit),
  (c) p(x),

plus the Bayes-optimal deviation E[u | u + σε = x] − x (computed by numerical
quadrature of the tfp density), which is what a perfectly trained DAE learns
at any σ (Tweedie: σ²·∂log(p ∗ N(0,σ²))/∂x).

Outputs: dae_curves.csv (all curves), dae_correlations.csv (Pearson and
Spearman correlation of |r(x) − x| with σ²|score|, with p(x) and with the
Bayes-optimal |deviation|, near the mode and over the whole support), fig9_dae.png (one column per PDF, a zoomed row
near the mode).
"""

import dataclasses
from typing import Dict, Tuple

import numpy as np

from tfc_perception import stats
from tfc_perception._typed import Checked
from tfc_perception.experiments import runner

# PDF parameters (documented in docs/reproduce.md). All centred at 0.
PDFS = {
    "gaussian": {"family": "Normal", "loc": 0.0, "scale": 1.0},
    "laplace": {"family": "Laplace", "loc": 0.0, "scale": 1.0},
    "student_t": {"family": "StudentT", "df": 3.0, "loc": 0.0, "scale": 1.0},
    "gsm": {"family": "GaussianScaleMixture", "weights": [0.8, 0.2],
            "scales": [0.5, 3.0]},
}


def make_pdf(spec: Dict):
  """The tfp distribution of a PDF spec (see PDFS).

  Args:
    spec: dict with "family" in {Normal, Laplace, StudentT,
      GaussianScaleMixture} and its parameters.

  Returns:
    A scalar tfp distribution (float32).

  Raises:
    ValueError: unknown family.
  """
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  tfd = tfp.distributions
  fam = spec.get("family")
  if fam == "Normal":
    return tfd.Normal(spec["loc"], spec["scale"])
  if fam == "Laplace":
    return tfd.Laplace(spec["loc"], spec["scale"])
  if fam == "StudentT":
    return tfd.StudentT(spec["df"], spec["loc"], spec["scale"])
  if fam == "GaussianScaleMixture":
    w = np.asarray(spec["weights"], np.float32)
    s = np.asarray(spec["scales"], np.float32)
    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=w / w.sum()),
        tfd.Normal(np.zeros_like(s), s))
  raise ValueError(f"unknown PDF family {fam!r}; accepted: Normal, Laplace, "
                   "StudentT, GaussianScaleMixture.")


def scaled_score(dist, x: np.ndarray, sigma: float) -> np.ndarray:
  """σ²·∂log p(x)/∂x, exact: tfp log-density differentiated by autodiff.

  Args:
    dist: scalar tfp distribution.
    x: [N] points.
    sigma: noise standard deviation.

  Returns:
    [N] float64 array.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  xt = tf.constant(np.asarray(x, np.float32))
  with tf.GradientTape() as tape:
    tape.watch(xt)
    lp = dist.log_prob(xt)
  return sigma ** 2 * tape.gradient(lp, xt).numpy().astype(np.float64)


def bayes_deviation(dist, x: np.ndarray, sigma: float, lo: float, hi: float,
                    n: int = 20001) -> np.ndarray:
  """E[u | u + σε = x] − x for u ~ p, by quadrature on [lo, hi] (n points).

  This is the deviation of the MSE-optimal DAE (Tweedie's formula).

  Args:
    dist: scalar tfp distribution p.
    x: [N] points.
    sigma: noise standard deviation.
    lo, hi: integration range (should hold almost all of p's mass near x).
    n: quadrature points.

  Returns:
    [N] float64 array.
  """
  u = np.linspace(lo, hi, n)
  logp = dist.log_prob(u.astype(np.float32)).numpy().astype(np.float64)
  x = np.asarray(x, np.float64)[:, None]
  logw = logp[None, :] - 0.5 * ((x - u[None, :]) / sigma) ** 2
  logw -= logw.max(axis=1, keepdims=True)
  w = np.exp(logw)
  return (w * u[None, :]).sum(1) / w.sum(1) - x[:, 0]


def _correlations(a, b):
  """(Pearson r, Spearman ρ); nan for a constant sample."""
  return stats.pearson(a, b)[0], stats.spearman(a, b)[0]


@dataclasses.dataclass(frozen=True)
class Config(Checked):
  """The Fig. 9 experiment.

  Attributes:
    pdfs: names of PDFS to study.
    sigma: corruption noise standard deviation (source units).
    hidden, activation: the DAE's dense layers.
    steps, batch_size, learning_rate, lr_floor, steps_per_execution: training
      (Adam, cosine decay to lr_floor * learning_rate).
    support_mass: the plotted support holds this much of p's mass.
    near_mode_mass: the "near the mode" region holds this much.
    grid_points: evaluation points across the support.
    seed: seed of the weights, the samples and the noise.
  """
  pdfs: Tuple[str, ...]
  sigma: float
  hidden: Tuple[int, ...]
  activation: str
  steps: int
  batch_size: int
  learning_rate: float
  lr_floor: float
  steps_per_execution: int
  support_mass: float
  near_mode_mass: float
  grid_points: int
  seed: int


def train_dae(spec: Dict, cfg: Config, train_dir=None, progress=False):
  """Trains one DAE on samples of the PDF `spec` with the one trainer.

  Batch i holds `cfg.batch_size` samples drawn with the stateless seed
  (seed, i), so the stream can start at any step.

  Returns:
    The `training.TrainResult`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  from tfc_perception import training  # pylint: disable=g-import-not-at-top
  from tfc_perception.data import sources  # pylint: disable=g-import-not-at-top
  dist = make_pdf(spec)
  batch, seed = cfg.batch_size, cfg.seed

  def data(start):
    def sample(i):
      return tf.reshape(dist.sample(batch, seed=sources.step_seed(seed, i)),
                        [batch, 1])
    return tf.data.Dataset.counter(start).map(sample).prefetch(
        tf.data.AUTOTUNE)

  return training.fit(
      lambda: models.build_density_model(
          "dae", dims=1, hidden=list(cfg.hidden), sigma=cfg.sigma,
          activation=cfg.activation, seed=seed),
      data,
      training.TrainSpec(
          batchsize=batch, epochs=1, steps_per_epoch=cfg.steps,
          learning_rate=cfg.learning_rate, lr_schedule="cosine",
          lr_floor=cfg.lr_floor, steps_per_execution=cfg.steps_per_execution,
          seed=seed, train_dir=train_dir, progress=progress))


def run(ctx: runner.RunContext) -> Dict:
  """Runs Fig. 9: trains the DAEs, writes curves, correlations and figure."""
  from tfc_perception import plotting  # pylint: disable=g-import-not-at-top
  from tfc_perception import models  # pylint: disable=g-import-not-at-top
  cfg = ctx.config
  sigma = cfg.sigma
  support_mass = cfg.support_mass
  mode_q = cfg.near_mode_mass
  curve_rows, corr_rows, results = [], [], {}
  panels = []
  for name in cfg.pdfs:
    if name not in PDFS:
      raise ValueError(f"unknown PDF {name!r} in pdfs; accepted: "
                       f"{', '.join(PDFS)}.")
    spec = PDFS[name]
    dist = make_pdf(spec)
    key = {"kind": "dae", "pdf": spec, "sigma": sigma,
           "hidden": list(cfg.hidden), "activation": cfg.activation,
           "steps": cfg.steps, "batch_size": cfg.batch_size,
           "learning_rate": cfg.learning_rate, "lr_floor": cfg.lr_floor,
           "seed": cfg.seed}
    model = ctx.cached_model(
        key, lambda train_dir, spec=spec: train_dae(spec, cfg, train_dir,
                                                    ctx.verbose),
        save_fn=models.save_density_model, load_fn=models.load_density_model,
        label=f"dae-{name}")
    # Support: the symmetric interval holding `support_mass` of p's mass.
    samples = dist.sample(200000, seed=[1, 2]).numpy()
    hi = float(np.quantile(np.abs(samples), support_mass))
    x = np.linspace(-hi, hi, cfg.grid_points)
    dev = model.deviation(x[:, None].astype(np.float32)).numpy()[:, 0]
    score = scaled_score(dist, x, sigma)
    p = dist.prob(x.astype(np.float32)).numpy().astype(np.float64)
    bayes = bayes_deviation(dist, x, sigma, -hi - 10 * sigma,
                            hi + 10 * sigma)
    half = float(np.quantile(np.abs(samples), mode_q))
    near = np.abs(x) <= half
    for xi, pi, di, si, bi, ni in zip(x, p, dev, score, bayes, near):
      curve_rows.append({"pdf": name, "x": xi, "p": pi, "deviation": di,
                         "abs_deviation": abs(di), "scaled_score": si,
                         "abs_scaled_score": abs(si), "bayes_deviation": bi,
                         "near_mode": int(ni)})
    res = {"sigma": sigma, "support_halfwidth": hi, "near_mode_halfwidth": half}
    for region, m in (("near_mode", near), ("overall", np.ones_like(near))):
      for what, other in (("score", np.abs(score)), ("p", p),
                          ("bayes", np.abs(bayes))):
        pr, sr = _correlations(np.abs(dev[m]), other[m])
        res[f"pearson_absdev_{what}_{region}"] = pr
        res[f"spearman_absdev_{what}_{region}"] = sr
        corr_rows.append({"pdf": name, "region": region,
                          "versus": {"score": "sigma2_abs_score",
                                     "p": "p(x)",
                                     "bayes": "abs_bayes_deviation"}[what],
                          "pearson": pr, "spearman": sr, "n_points": int(m.sum())})
      # How close the learned deviation is to the exact curves (RMS).
      res[f"rms_dev_minus_scaled_score_{region}"] = float(
          np.sqrt(np.mean((dev[m] - score[m]) ** 2)))
      res[f"rms_dev_minus_bayes_{region}"] = float(
          np.sqrt(np.mean((dev[m] - bayes[m]) ** 2)))
      res[f"rms_scaled_score_{region}"] = float(np.sqrt(np.mean(score[m] ** 2)))
    if name == "gaussian":
      # Linear in x: fitted slope of the learned deviation vs exact ones.
      s = float(np.sum(dev * x) / np.sum(x * x))
      res["slope_learned"] = s
      res["slope_scaled_score"] = -sigma ** 2 / spec["scale"] ** 2
      res["slope_bayes"] = -sigma ** 2 / (spec["scale"] ** 2 + sigma ** 2)
    results[name] = res
    panels.append((name, spec, x, p, dev, score, bayes, near, half))
    ctx.log(f"{name}: rho_S(|dev|, σ²|score|) near mode "
            f"{res['spearman_absdev_score_near_mode']:.3f}, overall "
            f"{res['spearman_absdev_score_overall']:.3f}; "
            f"rho_S(|dev|, p) near mode {res['spearman_absdev_p_near_mode']:.3f}")
  ctx.write_csv("dae_curves.csv", curve_rows)
  ctx.write_csv("dae_correlations.csv", corr_rows)

  fig, axes = plotting.subplots(2, len(panels), size=(3.3, 2.9))
  for j, (name, spec, x, p, dev, score, bayes, near, half) in enumerate(panels):
    for i, sel in enumerate((np.ones_like(near), near)):
      ax = axes[i, j]
      ax.plot(x[sel], np.abs(dev[sel]), "-", color="tab:red", lw=1.6,
              label="|r(x) − x| (DAE)")
      ax.plot(x[sel], np.abs(score[sel]), "--", color="tab:blue", lw=1.2,
              label="σ²|∂log p/∂x| (exact)")
      ax.plot(x[sel], np.abs(bayes[sel]), ":", color="k", lw=1.2,
              label="Bayes-optimal |dev|")
      ax.set_xlabel("x (source units)")
      if j == 0:
        ax.set_ylabel("deviation (source units)")
      ax2 = ax.twinx()
      ax2.fill_between(x[sel], p[sel], color="tab:green", alpha=0.15)
      ax2.plot(x[sel], p[sel], color="tab:green", lw=1.0, label="p(x)")
      ax2.set_ylim(0, None)
      if j == len(panels) - 1:
        ax2.set_ylabel("p(x) (density)", color="tab:green")
      title = (f"{name} ({spec['family']})" if i == 0 else
               f"zoom |x| ≤ {half:.2g} (central {cfg.near_mode_mass:.0%})")
      ax.set_title(title, fontsize=8)
      if i == 0 and j == 0:
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        fig.legend(h1 + h2, l1 + l2, fontsize=7, ncol=4,
                   loc="outside lower center")
  fig.suptitle(f"Fig. 9: DAE deviation vs scaled score and p(x), σ = {sigma}",
               fontsize=9)
  numbers = {}
  for name, r in results.items():
    numbers[f"{name}: ρS(|dev|, σ²|score|) near mode / overall"] = [
        r["spearman_absdev_score_near_mode"], r["spearman_absdev_score_overall"]]
    numbers[f"{name}: ρS(|dev|, p(x)) near mode / overall"] = [
        r["spearman_absdev_p_near_mode"], r["spearman_absdev_p_overall"]]
  if "gaussian" in results:
    g = results["gaussian"]
    numbers["gaussian: slope of r(x)−x learned / −σ²/s² / −σ²/(s²+σ²)"] = [
        g["slope_learned"], g["slope_scaled_score"], g["slope_bayes"]]
  ctx.save_figure(
      fig, "fig9_dae.png",
      caption=("Deviation |r(x) − x| of a trained DAE (red), exact scaled "
               "score σ²|∂log p/∂x| (blue dashed), Bayes-optimal deviation "
               "(black dotted) and p(x) (green, right axis), one column per "
               "PDF; second row zoomed near the mode. Paper Fig. 9."),
      numbers=numbers, table=["dae_curves.csv", "dae_correlations.csv"])
  return results


_COMMON = dict(pdfs=tuple(PDFS), sigma=0.25, hidden=(64, 64),
               activation="softplus", learning_rate=3e-3, lr_floor=0.02,
               steps_per_execution=100, support_mass=0.99,
               near_mode_mass=0.5, grid_points=801, seed=1)

runner.register_experiment(
    "dae", run,
    configs={
        "tiny": Config(**dict(_COMMON, pdfs=("gaussian", "laplace"),
                              steps=1500, batch_size=256, grid_points=201)),
        "quick": Config(**dict(_COMMON, steps=4000, batch_size=512)),
        "paper": Config(**dict(_COMMON, steps=30000, batch_size=1024,
                               hidden=(128, 128, 128), grid_points=2001)),
    },
    description=("Denoising autoencoders: deviation |r(x) − x| versus the "
                 "exact scaled score σ²|∂log p/∂x| and p(x), for a Gaussian "
                 "and heavy-tailed PDFs (paper appendix, Fig. 9)."),
    paper_figures=("Fig. 9",), groups=("dae",))
