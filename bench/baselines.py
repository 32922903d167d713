"""scikit-learn reference for `adgan bench baselines`: the same four baselines on the same data.

    adgan bench baselines --dataset mnist --data ../shared/data/mnist --normal-class 0 \
        --pca-dim 40 --dump bench/out/mnist-0.safetensors
    .venv/bin/python bench/baselines.py bench/out/mnist-0.safetensors --pca-dim 40

Settings as adgan's: PCA without whitening; KDE bandwidth by GridSearchCV over 2^0..2^4 (step
2^0.5) with unshuffled 10-fold CV; OC-SVM nu=0.1, gamma="scale"; Isolation Forest 100 trees,
256 samples; GMM full covariance, 2..20 components by BIC. Needs numpy and scikit-learn.
"""

import argparse
import json
import struct
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    """Reads a safetensors file with numpy alone (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dump")
    parser.add_argument("--pca-dim", type=int, default=40)
    parser.add_argument("--iforest-seeds", type=int, default=0,
                        help="also print Isolation Forest AUCs over this many random_state values")
    args = parser.parse_args()
    t = read_safetensors(args.dump)
    train, test, labels = t["train"].astype(np.float64), t["test"].astype(np.float64), t["labels"]
    pca = PCA(n_components=args.pca_dim, svd_solver="full").fit(train)
    x, y = pca.transform(train), pca.transform(test)
    print(f"{len(x)} training images, {len(y)} test images, PCA d' = {args.pca_dim}")

    def report(name, fit, score):
        start = time.perf_counter()
        model, chosen = fit()
        fitted = time.perf_counter()
        s = score(model)
        scored = time.perf_counter()
        print(f"{name:<8} AUC {roc_auc_score(labels, s):.4f}  fit {fitted - start:.2f} s  "
              f"score {scored - fitted:.2f} s  {chosen}")
        return model

    def kde():
        grid = GridSearchCV(KernelDensity(kernel="gaussian"),
                            {"bandwidth": 2.0 ** np.arange(0, 4.01, 0.5)}, cv=10).fit(x)
        return grid.best_estimator_, f"bandwidth={grid.best_params_['bandwidth']:.6f}"

    kde_model = report("kde", kde, lambda m: -m.score_samples(y))

    # scikit-learn's tree KDE is not exact far from the data; the dense sum is.
    h = kde_model.bandwidth
    d2 = (y ** 2).sum(1)[:, None] + (x ** 2).sum(1)[None, :] - 2 * y @ x.T
    z = -np.maximum(d2, 0) / (2 * h * h)
    m = z.max(axis=1, keepdims=True)
    exact = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    print(f"kde      exact dense log-sum-exp at h={h}: AUC {roc_auc_score(labels, -exact):.5f}")

    def ocsvm():
        m = OneClassSVM(kernel="rbf", nu=0.1, gamma="scale").fit(x)
        gamma = 1.0 / (x.shape[1] * x.var())
        return m, f"gamma={gamma:.6f} support_vectors={len(m.support_)}"

    report("ocsvm", ocsvm, lambda m: -m.decision_function(y))

    def iforest():
        return IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(x), ""

    report("iforest", iforest, lambda m: -m.score_samples(y))
    if args.iforest_seeds:
        aucs = [roc_auc_score(labels, -IsolationForest(n_estimators=100, max_samples=256,
                                                      random_state=s).fit(x).score_samples(y))
                for s in range(args.iforest_seeds)]
        print(f"iforest  seeds 0-{args.iforest_seeds - 1}: mean AUC {np.mean(aucs):.4f}, "
              f"sd {np.std(aucs):.4f}")

    def gmm():
        best = None
        for k in range(2, 21):
            m = GaussianMixture(k, covariance_type="full", random_state=0).fit(x)
            if best is None or m.bic(x) < best[1]:
                best = (m, m.bic(x))
        return best[0], f"components={best[0].n_components}"

    report("gmm", gmm, lambda m: -m.score_samples(y))


if __name__ == "__main__":
    main()
