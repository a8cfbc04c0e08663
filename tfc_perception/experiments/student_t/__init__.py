"""The 2-D experiments (issue 6): Figs. 2, 4 left, 11, 12, 13 and 14.

The toy compressive autoencoder of Fig. 10 (`build_model("toy2d")`) is trained
with Eq. 3, L = R + λ·D, on the 2-D Student-t source (and a uniform one for
Fig. 13) of `tfc_perception.data.sources`, whose density p(x) is exact. All
models go through the runner's cache keyed by their full training config, so a
model used by several figures (e.g. the plain model at λ = 4 in Figs. 2, 11,
12 and 14) is trained once.

Experiments (each `bin/reproduce NAME`; `bin/reproduce all` runs them in this
order):

- fig2:  λ sweep (≥ 8 rates). N samples x1 ~ p, x2 = x1 + N(0, σ²I) for a
         sweep of σ from far below to above the cell size. Spearman
         ρ(D, p(x1)) of De, Dr, Din, Ds and of the sensitivities D/||Δx||,
         one point per model, against the model's rate (Obs. 2-4), with the
         fraction of pairs whose codes differ (Dr is 0 for the others). The
         main figure uses the smallest σ at which most pairs cross a cell
         boundary (`configs.Fig2`); fig2_perturbations.png shows every σ.
- fig11: one model's quantisation of the Student-t: density, samples, cell
         boundaries and code vectors. Cell-size statistics count only cells
         that do not touch the grid's edge (`metrics.cell_stats`).
- fig12: models trained with ||·||², P(x)·||·||² and ||·||²/P(x):
         quantisation plots, bits/sample and SSE on a validation set.
- fig13: uniform source, plain versus Student-t-weighted loss, in both
         readings of the caption: D weighted, or all of Eq. 3 weighted per
         sample (`configs.Fig13.weightings`).
- fig14: performance of P(x)-weighted over plain models along the x-axis
         (mean over bins of x1 and a thin band |x2| ≤ 0.5, since the error
         at single points depends on where the line cuts the cells): the
         ratio of Eq. 13, P1/P0 with P = distortion / rate per bin
         (primary), and the ratio of the squared errors alone (secondary);
         raw and a degree-20 polynomial fit (Fig. 14; the fits alone are
         Fig. 4 left).

Weighted losses and λ (assumed; the paper gives no λ for them): P(x) differs
from 1 by orders of magnitude, so the λ of a weighted model is λ / g, with g
the geometric mean of its weight w(x) (P(x) or 1/P(x)) over the training
source. In the high-rate limit the cell area at x is ∝ 1/(λ·w(x)) and the
rate is const − E[log2 area], so this choice gives the weighted and the plain
model the same rate: the figures compare where the bits go, not how many
there are (config `weight_normalisation`: "geomean", "median" or "none").
For ||·||²/P(x) the density is floored at `inverse_density_floor` (1e-3, P
of the Student-t at radius ≈ 4.6; 4.7% of the samples fall beyond): without it a single tail
sample (P ~ r^-5) outweighs a batch by orders of magnitude and training
diverges (we measured SSE/sample 18.7, 50× the plain model's, unfloored).

Modules: `configs` (the typed configs and their tiny / quick / paper
presets), `metrics` (sources, models trained with the one trainer, and the
measures), `figures` (one run function per experiment).
"""


from tfc_perception.experiments import runner
from tfc_perception.experiments.student_t import configs
from tfc_perception.experiments.student_t import figures
from tfc_perception.experiments.student_t.configs import LAMBDA_SWEEP
from tfc_perception.experiments.student_t.configs import REFERENCE_LAMBDA
from tfc_perception.experiments.student_t.metrics import cell_stats
from tfc_perception.experiments.student_t.metrics import evaluate
from tfc_perception.experiments.student_t.metrics import get_model
from tfc_perception.experiments.student_t.metrics import induced_correlations
from tfc_perception.experiments.student_t.metrics import model_spec
from tfc_perception.experiments.student_t.metrics import quantisation_map
from tfc_perception.experiments.student_t.metrics import train_toy2d

__all__ = ["LAMBDA_SWEEP", "REFERENCE_LAMBDA", "cell_stats", "evaluate",
           "get_model", "induced_correlations", "model_spec",
           "quantisation_map", "train_toy2d"]

runner.register_experiment(
    "fig2", figures.run_fig2, configs.PRESETS["fig2"],
    description=("Obs. 2-4: Spearman ρ between p(x₁) and the induced "
                 "distances De, Dr, Din, Ds and sensitivities of toy 2-D "
                 "autoencoders trained at ≥ 8 rates on a 2-D Student-t, "
                 "for a sweep of perturbation sizes, with the fraction of "
                 "pairs whose codes differ."),
    paper_figures=("Fig. 2",), groups=("all",))

runner.register_experiment(
    "fig11", figures.run_fig11, configs.PRESETS["fig11"],
    description=("The 2-D Student-t source and the quantisation (cells, code "
                 "vectors) learned by one model."),
    paper_figures=("Fig. 11",), groups=("all",))

runner.register_experiment(
    "fig12", figures.run_fig12, configs.PRESETS["fig12"],
    description=("Including (P(x)·||·||²) or removing (||·||²/P(x)) the "
                 "distribution in the loss: quantisation, bits and SSE."),
    paper_figures=("Fig. 12",), groups=("all",))

runner.register_experiment(
    "fig13", figures.run_fig13, configs.PRESETS["fig13"],
    description=("Uniform source: plain versus Student-t-weighted "
                 "rate-distortion (D weighted, and all of Eq. 3 weighted); "
                 "where the weight moves the code vectors."),
    paper_figures=("Fig. 13",), groups=("all",))

runner.register_experiment(
    "fig14", figures.run_fig14, configs.PRESETS["fig14"],
    description=("Obs. 6 in 2-D: performance ratio (Eq. 13, distortion / "
                 "rate; and the SSE ratio) of P(x)-weighted over plain "
                 "models along the x-axis (raw and degree-20 polynomial "
                 "fit)."),
    paper_figures=("Fig. 4 left", "Fig. 14"), groups=("all",))
