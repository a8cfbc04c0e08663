# Run with PYTHONPATH=/work/main (release-1 code) to make the legacy fixture.
import os, sys, numpy as np, tensorflow as tf
from tfc_perception import models, codec
out = sys.argv[1]
img = tf.io.decode_png(tf.io.read_file("/work/shared/data/kodak/kodim23.png"), channels=3).numpy()[200:237, 300:345]
tf.io.write_file(os.path.join(out, "image.png"), tf.io.encode_png(img))
def scale(m):
  for v in m.analysis_transform.trainable_variables:
    if "kernel" in v.name and "layer_3" in v.name:
      v.assign(v * 6.)
fp = models.build_model("factorized", num_filters=4, latent_channels=4, seed=3)
scale(fp)
sq3 = models.build_model("softquant", num_filters=4, latent_channels=4, num_centers=3, seed=4)
sq2 = models.build_model("softquant", num_filters=4, latent_channels=4, num_centers=2, seed=5)
for m in (sq3, sq2):
  scale(m)
  l = m.num_centers
  sym = m.symbols(m.analysis(img[None])).numpy()
  counts = np.stack([np.bincount(sym[..., c].ravel(), minlength=l) for c in range(4)])
  pmf = np.full((4, l), 1e-5, np.float32)
  pmf[np.arange(4), counts.argmin(-1)] = 1.0
  m.symbol_pmf.assign(pmf / pmf.sum(-1, keepdims=True))
for name, m in (("factorized", fp), ("softquant3", sq3), ("softquant2", sq2)):
  models.save_model(m, os.path.join(out, name))
  data = codec.encode(m, img)
  s = m.compress(img[None])[0].numpy()[0]
  print(name, len(data), "flag", s[:1] if name != "factorized" else "-")
  open(os.path.join(out, name + ".tfcp"), "wb").write(data)
  dec = codec.decode(m, data)
  tf.io.write_file(os.path.join(out, name + ".decoded.png"), tf.io.encode_png(dec))
