"""Notebook-style: train ADGAN on MNIST's zeros, score the test images, show the ten most
anomalous (with matplotlib, when installed).

    .venv/bin/python python/examples/mnist_class0.py ../shared/data/mnist runs/py-mnist-0
"""
import sys

import numpy as np

import adgan

data, out = sys.argv[1], sys.argv[2]
run = adgan.train(data, normal_class="0", out=out, dataset="mnist", resume=False)
images, labels, _, _ = adgan.load_images("mnist", data, split="test")
pick = np.random.RandomState(0).choice(len(images), 500, replace=False)
images, labels = images[pick], labels[pick]
# One search gives scores (adgan-ic: the run is calibrated), p-values and decisions.
scores, p_values, flagged = run.detect(images, alpha=0.05)
print(f"flagged {flagged.sum()} of {len(images)}; of them not zeros: "
      f"{np.mean(labels[flagged == 1] != 0):.2f}")
top = np.argsort(-scores)[:10]
print("ten most anomalous:", [(int(labels[i]), round(float(scores[i]), 3)) for i in top])
try:
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
fig, axes = plt.subplots(1, 10, figsize=(12, 1.6))
for ax, i in zip(axes, top):
    ax.imshow(images[i, 0], cmap="gray")
    ax.set_title(f"{labels[i]}: {scores[i]:.2f}", fontsize=8)
    ax.axis("off")
plt.show()
