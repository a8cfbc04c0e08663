"""Figure helpers shared by the experiments (matplotlib, Agg backend).

All helpers draw on a given Axes and label their axes with units; figures are
saved atomically with `save_figure` (PNG written to a temporary file, then
renamed).
"""

import io
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top

from tfc_perception import _io  # noqa: E402  pylint: disable=g-import-not-at-top

__all__ = ["subplots", "save_figure", "plot_density", "plot_quantisation",
           "cell_boundaries", "line_panel"]


def subplots(nrows: int = 1, ncols: int = 1, size=(4.0, 3.6), **kwargs):
  """plt.subplots with a per-panel size (inches) and constrained layout.

  Returns:
    (fig, axes) with axes always a 2-D numpy array [nrows, ncols].
  """
  if nrows < 1 or ncols < 1:
    raise ValueError(f"nrows and ncols must be >= 1, got {nrows}, {ncols}.")
  fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols,
                                                  size[1] * nrows),
                           squeeze=False, layout="constrained", **kwargs)
  return fig, axes


def save_figure(fig, path: str, dpi: int = 110) -> None:
  """Saves `fig` as PNG to `path` atomically and closes it.

  Args:
    fig: a matplotlib Figure.
    path: destination (.png).
    dpi: resolution in dots per inch.

  Raises:
    ValueError: if `path` does not end in .png.
  """
  if not str(path).endswith(".png"):
    raise ValueError(f"figures are saved as PNG; path must end in .png, got "
                     f"{path!r}.")
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  plt.close(fig)
  _io.write_bytes(path, buf.getvalue())


def cell_boundaries(labels: np.ndarray) -> np.ndarray:
  """Boolean mask of grid points whose right or lower neighbour has another
  quantisation cell label (the cell boundaries of Fig. 11c).

  Args:
    labels: int array [H, W] of cell ids on a regular grid.

  Returns:
    bool array [H, W].
  """
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise ValueError(f"labels must be a 2-D grid, got shape {labels.shape}.")
  edge = np.zeros(labels.shape, dtype=bool)
  edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
  edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
  return edge


def _boundary_segments(xs, ys, labels):
  """Cell boundaries as a LineCollection of grid-cell edges (crisp at any
  resolution, unlike an imshow of the boundary mask)."""
  from matplotlib.collections import LineCollection  # pylint: disable=g-import-not-at-top
  labels = np.asarray(labels)
  if labels.shape != (len(ys), len(xs)):
    raise ValueError(f"labels must have shape (len(ys), len(xs)) = "
                     f"{(len(ys), len(xs))}, got {labels.shape}.")
  dx, dy = xs[1] - xs[0], ys[1] - ys[0]
  segs = []
  # Between columns j and j+1: a vertical edge at the midpoint.
  ii, jj = np.nonzero(labels[:, :-1] != labels[:, 1:])
  xm = 0.5 * (xs[jj] + xs[jj + 1])
  segs.append(np.stack([np.stack([xm, ys[ii] - dy / 2], 1),
                        np.stack([xm, ys[ii] + dy / 2], 1)], 1))
  ii, jj = np.nonzero(labels[:-1, :] != labels[1:, :])
  ym = 0.5 * (ys[ii] + ys[ii + 1])
  segs.append(np.stack([np.stack([xs[jj] - dx / 2, ym], 1),
                        np.stack([xs[jj] + dx / 2, ym], 1)], 1))
  return LineCollection(np.concatenate(segs, 0), colors="k", linewidths=0.7,
                        zorder=2)


def plot_density(ax, xs: np.ndarray, ys: np.ndarray, density: np.ndarray,
                 log: bool = True, cmap: str = "Blues", title: str = "",
                 colorbar: bool = False):
  """Shows a 2-D density sampled on the grid xs × ys (density[j, i] at
  (xs[i], ys[j])).

  Args:
    ax: Axes.
    xs, ys: 1-D grid coordinates.
    density: [len(ys), len(xs)] values of p(x).
    log: show log10 p(x) (the Student-t spans decades).
    cmap: colormap.
    title: panel title.
    colorbar: add a colour bar.

  Returns:
    The AxesImage.
  """
  density = np.asarray(density, dtype=np.float64)
  if density.shape != (len(ys), len(xs)):
    raise ValueError(f"density must have shape (len(ys), len(xs)) = "
                     f"{(len(ys), len(xs))}, got {density.shape}.")
  values = np.log10(np.maximum(density, 1e-300)) if log else density
  if log:
    lo = np.percentile(values, 1)
    values = np.maximum(values, lo)
  im = ax.imshow(values, origin="lower", cmap=cmap,
                 extent=(xs[0], xs[-1], ys[0], ys[-1]), aspect="equal",
                 interpolation="nearest")
  if colorbar:
    cb = ax.figure.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("log10 p(x)" if log else "p(x)")
  ax.set_xlabel("x₁ (source units)")
  ax.set_ylabel("x₂ (source units)")
  if title:
    ax.set_title(title, fontsize=9)
  return im


def plot_quantisation(ax, xs: np.ndarray, ys: np.ndarray, density: np.ndarray,
                      labels: np.ndarray, codes: np.ndarray,
                      code_weights: Optional[np.ndarray] = None,
                      title: str = "", samples: Optional[np.ndarray] = None):
  """Density (blue, log scale), quantisation cell boundaries (black) and code vectors
  (red dots), as in Fig. 11c / 12 / 13.

  Args:
    ax: Axes.
    xs, ys: 1-D grid coordinates; labels/density are [len(ys), len(xs)].
    density: p(x) on the grid (shown as log10).
    labels: cell id of each grid point (same quantised latent = same id).
    codes: [K, 2] reconstruction x̂ of each cell (the code vectors).
    code_weights: optional [K] probability mass of each cell (dot size).
    title: panel title.
    samples: optional [N, 2] source samples shown as faint dots.
  """
  plot_density(ax, xs, ys, density, log=True, title=title)
  ax.add_collection(_boundary_segments(xs, ys, labels))
  if samples is not None:
    ax.plot(samples[:, 0], samples[:, 1], ".", ms=1, color="tab:orange",
            alpha=0.3)
  codes = np.asarray(codes)
  if codes.size:
    inside = ((codes[:, 0] >= xs[0]) & (codes[:, 0] <= xs[-1]) &
              (codes[:, 1] >= ys[0]) & (codes[:, 1] <= ys[-1]))
    sizes = 8.0
    if code_weights is not None:
      w = np.asarray(code_weights, dtype=np.float64)
      sizes = 4.0 + 40.0 * np.sqrt(w / max(w.max(), 1e-12))
      sizes = sizes[inside]
    ax.scatter(codes[inside, 0], codes[inside, 1], s=sizes, c="red",
               edgecolors="white", linewidths=0.3, zorder=3)
  ax.set_xlim(xs[0], xs[-1])
  ax.set_ylim(ys[0], ys[-1])


def line_panel(ax, x, curves: Sequence, labels: Sequence[str], xlabel: str,
               ylabel: str, title: str = "", logy: bool = False, styles=None):
  """Several curves y(x) on one Axes with a legend.

  Args:
    ax: Axes.
    x: [N] abscissa shared by all curves, or a tuple of per-curve abscissas.
    curves: list of [N] arrays.
    labels: legend labels.
    xlabel, ylabel: axis labels (with units).
    title: panel title.
    logy: log-scale y axis.
    styles: optional list of matplotlib format strings.
  """
  if len(curves) != len(labels):
    raise ValueError(f"got {len(curves)} curves but {len(labels)} labels.")
  for i, (c, lab) in enumerate(zip(curves, labels)):
    xi = x[i] if isinstance(x, tuple) else x
    fmt = styles[i] if styles else "-"
    ax.plot(xi, c, fmt, label=lab, lw=1.2, ms=4)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if logy:
    ax.set_yscale("log")
  if title:
    ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  if labels:
    ax.legend(fontsize=7)
