"""The Python API over the same library as the command line: the same scores, the same
refusals, an estimator that follows scikit-learn's conventions, and Ctrl-C that stops."""

import csv
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import adgan
from adgan import _adgan

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "release" / "adgan"
TINY = dict(width=8, latent_dim=16, iterations=20, batch_size=16)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run on the demo's discs, trained from Python (with its calibration hold-out)."""
    out = tmp_path_factory.mktemp("run") / "run"
    run = adgan.train(None, normal_class="disc", out=out, dataset="demo", **TINY)
    assert run.iteration == 20 and (out / "calibration.json").exists()
    return out


def images(n, seed=0):
    """n random-ish 8-bit RGB images with structure (gradients plus noise), N x C x H x W."""
    rng = np.random.RandomState(seed)
    ramp = np.linspace(0, 255, 32)[None, None, None, :]
    noise = rng.rand(n, 3, 32, 32) * 80
    return np.clip(ramp * rng.rand(n, 3, 1, 1) + noise, 0, 255).astype(np.uint8)


def cli(*args):
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built (cargo build --release)")
    done = subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_python_scores_equal_the_command_lines(run_dir, tmp_path):
    x = images(6)
    folder = tmp_path / "imgs"
    # Written as PNG by the library: lossless, so the files hold exactly the array.
    _adgan.write_pngs(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), str(folder))
    cli("score", "--model", run_dir, "--images", folder, "--device", "cpu", "--out",
        tmp_path / "s.csv")
    with open(tmp_path / "s.csv") as f:
        rows = {Path(r["id"]).name: r for r in csv.DictReader(f)}
    names = [f"image-{i:06d}.png" for i in range(6)]
    expected = np.array([float(rows[n]["score"]) for n in names])
    expected_p = np.array([float(rows[n]["p_value"]) for n in names])

    run = adgan.Run.load(run_dir)
    from_array = run.score(x)
    from_files = run.score([folder / n for n in names])
    np.testing.assert_allclose(from_array, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_files, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run.p_values(x), expected_p, rtol=1e-6)
    # The same images as floats in [0, 1], grey [N, H, W] and a torch-like tensor agree too.
    np.testing.assert_allclose(run.score(x / 255.0), expected, rtol=1e-5, atol=1e-6)

    class TensorLike:  # what the package asks of a torch.Tensor
        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return x

    np.testing.assert_allclose(run.score(TensorLike()), expected, rtol=1e-5, atol=1e-6)
    grey = run.score(x[:, 0])
    assert grey.shape == (6,) and np.all(np.isfinite(grey))
    assert set(run.predict(x, alpha=0.5)) <= {0, 1}
    found = run.detect(x, alpha=0.5)
    np.testing.assert_allclose(found.scores, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(found.anomalous, (found.p_values <= 0.5).astype(int))


def test_training_calibrates_the_ensemble_and_it_scores_as_the_command_does(run_dir, tmp_path):
    # train fitted the ensemble's classic member on the training images and kept it.
    assert (run_dir / "baselines" / "kde" / "fitted.json").exists()
    x = images(5, seed=3)
    folder = tmp_path / "imgs"
    _adgan.write_pngs(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), str(folder))
    cli("score", "--model", run_dir, "--images", folder, "--device", "cpu", "--method",
        "ensemble", "--out", tmp_path / "e.csv")
    with open(tmp_path / "e.csv") as f:
        rows = {Path(r["id"]).name: r for r in csv.DictReader(f)}
    names = [f"image-{i:06d}.png" for i in range(5)]
    run = adgan.Run.load(run_dir)
    scores, p_values, _ = run.detect(x, method="ensemble")
    np.testing.assert_allclose(scores, [float(rows[n]["score"]) for n in names],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p_values, [float(rows[n]["p_value"]) for n in names], rtol=1e-6)


def test_bad_input_and_settings_are_refused_with_the_librarys_message(run_dir, capsys):
    run = adgan.Run.load(run_dir)
    x = images(2)
    cases = [
        (np.zeros((0, 3, 32, 32), np.uint8), "empty"),
        (np.full((2, 3, 32, 32), np.nan, np.float32), "NaN"),
        (np.zeros((2, 5, 32, 32), np.uint8), "1 or 3 channels"),
        (np.zeros((2, 32), np.uint8), "shape"),
        (x.astype(np.float32), "[0, 1]"),
        ([], "empty"),
    ]
    for bad, wanted in cases:
        with pytest.raises(ValueError, match=None) as err:
            run.score(bad)
        assert wanted in str(err.value), (wanted, str(err.value))
    with pytest.raises(ValueError, match="unknown method"):
        run.score(x, method="nope")
    with pytest.raises(ValueError, match="alpha"):
        run.predict(x, alpha=1.5)
    with pytest.raises(ValueError, match="n_seed|seeds"):
        run.score(x, n_seed=0)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        run.score(x, cuda_graph=True)
    # An alpha no p-value can reach is warned about, naming the minimum.
    run.predict(x, alpha=1e-6)
    assert "no image can be flagged" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="no-such-run"):
        adgan.Run.load(run_dir.parent / "no-such-run")


def test_a_run_of_another_format_version_is_refused(run_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in run_dir.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    config["format_version"] = 9
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="format"):
        adgan.Run.load(copy)


def test_the_estimator_follows_scikit_learns_conventions(tmp_path):
    est = adgan.ADGAN(iterations=20, width=8, latent_dim=16, batch_size=16, n_seed=8,
                      out=str(tmp_path / "est"))
    params = est.get_params()
    assert params["iterations"] == 20 and params["n_seed"] == 8
    twin = type(est)(**params)  # what sklearn.base.clone does
    assert twin.get_params() == params
    assert est.set_params(alpha=0.1) is est and est.alpha == 0.1
    with pytest.raises(ValueError, match="unknown setting"):
        est.set_params(nope=1)
    with pytest.raises(ValueError, match="not fitted"):
        est.decision_function(images(2))
    with pytest.raises(ValueError):
        est.fit(np.full((4, 3, 32, 32), np.nan, np.float32))

    normal = images(220, seed=1)
    assert est.fit(normal) is est
    scores = est.decision_function(images(5, seed=2))
    assert scores.shape == (5,) and np.all(np.isfinite(scores))
    np.testing.assert_allclose(est.score_samples(images(5, seed=2)), -scores)
    assert set(est.predict(images(5, seed=2))) <= {0, 1}
    try:
        from sklearn.base import clone
    except ImportError:
        return
    assert clone(est).get_params() == est.get_params()


def test_ctrl_c_stops_a_long_training(tmp_path):
    out = tmp_path / "long"
    # Ctrl-C comes from outside, as a terminal or a notebook's kernel sends it (a Python
    # thread could not send it: the training holds the interpreter's lock).
    killer = subprocess.Popen(["sh", "-c", f"sleep 3; kill -INT {os.getpid()}"])
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            adgan.train(None, normal_class="disc", out=out, dataset="demo",
                        **{**TINY, "iterations": 100000})
    finally:
        killer.kill()
        killer.wait()
    assert time.monotonic() - started < 60
    assert (out / "config.json").exists()
    # It resumes as the command does, here to a shorter end.
    run = adgan.train(None, normal_class="disc", out=out, dataset="demo", resume=True,
                      **{**TINY, "iterations": 30})
    assert run.iteration == 30


def test_a_data_set_reads_as_training_reads_it():
    x, labels, names, ids = adgan.load_images("demo", split="test")
    assert x.ndim == 4 and x.shape[1:] == (3, 32, 32) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert labels is not None and len(labels) == len(x) == len(ids)
    assert "disc" in names
    with pytest.raises(ValueError, match="unknown kind of data set"):
        adgan.load_images("nope")
    with pytest.raises(ValueError, match="needs the path"):
        adgan.load_images("mnist")


def test_training_settings_are_refused_as_the_command_refuses_them(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(ValueError, match="beta1"):
        adgan.train(None, out=out, dataset="demo", objective="clip", beta1=0.5, **TINY)
    with pytest.raises(ValueError, match="lambda"):
        adgan.train(None, out=out, dataset="demo", objective="clip", **{"lambda": 5.0}, **TINY)
    with pytest.raises(ValueError, match="unknown initialisation"):
        adgan.train(None, out=out, dataset="demo", init="nope", **TINY)
    with pytest.raises(ValueError, match="calibration fraction"):
        adgan.train(None, out=out, dataset="demo", calibration_fraction=1.5, **TINY)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        adgan.train(None, out=out, dataset="demo", cuda_graph=True, **TINY)
    assert not (out / "checkpoint.safetensors").exists()
