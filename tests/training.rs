//! WGAN training: it learns, it checkpoints exactly, it resumes exactly, it fails loudly.

mod common;

use adgan::data::Dataset;
use adgan::io;
use adgan::optim::OptimizerConfig;
use adgan::run::load_gan;
use adgan::train::{self, Progress, RunConfig, TrainConfig, Trainer};
use adgan::train::{CHECKPOINT_FILE, CONFIG_FILE};
use common::{demo_training_data, tiny_run};
use std::ops::ControlFlow;
use tch::{Device, Kind, Tensor};

fn quick_gp(iterations: usize) -> TrainConfig {
    TrainConfig {
        iterations,
        batch_size: 16,
        n_critic: 2,
        seed: 11,
        checkpoint_every: 4,
        sample_every: 1000,
        optimizer: OptimizerConfig::adam(2e-3, 0.5, 0.9),
        ..TrainConfig::gradient_penalty()
    }
}

fn keep_going(_: &Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// Trains (or, with `resume`, continues) `config` in `dir` on the CPU to the end.
fn train_on_cpu(
    dir: &std::path::Path,
    config: &RunConfig,
    data: &Dataset,
    resume: bool,
) -> anyhow::Result<train::TrainOutcome> {
    let options = train::TrainOptions::resume(resume);
    train::train(dir, config, data, Device::Cpu, options, &mut keep_going)
}

/// Distance between the per-channel mean and std of generated and real images.
fn moment_gap(samples: &Tensor, data: &Dataset) -> f64 {
    let stats = |x: &Tensor| {
        let mean = x.mean_dim([0, 2, 3].as_slice(), false, Kind::Float);
        let std = x.std_dim([0, 2, 3].as_slice(), true, false);
        Tensor::cat(&[mean, std], 0)
    };
    (stats(samples) - stats(&data.images))
        .abs()
        .sum(Kind::Float)
        .double_value(&[])
}

#[test]
fn training_moves_samples_toward_the_data() {
    let (data, provenance) = demo_training_data();
    let config = tiny_run(quick_gp(60), provenance);
    let mut trainer = Trainer::new(config, &data, Device::Cpu).unwrap();
    let z = Tensor::randn([256, 16], (Kind::Float, Device::Cpu));
    let before = moment_gap(
        &tch::no_grad(|| trainer.generator().forward(&z, false)),
        &data,
    );
    for _ in 0..60 {
        let losses = trainer.step().unwrap();
        assert!(losses.critic.is_finite() && losses.generator.is_finite());
    }
    let after = moment_gap(
        &tch::no_grad(|| trainer.generator().forward(&z, false)),
        &data,
    );
    assert!(
        after < 0.5 * before,
        "moment gap before {before:.3}, after {after:.3}"
    );
}

#[test]
fn weight_clipping_keeps_critic_weights_in_bounds() {
    let (data, provenance) = demo_training_data();
    let config = tiny_run(
        TrainConfig {
            iterations: 3,
            batch_size: 16,
            seed: 2,
            ..TrainConfig::default()
        },
        provenance,
    );
    let mut trainer = Trainer::new(config, &data, Device::Cpu).unwrap();
    for _ in 0..3 {
        trainer.step().unwrap();
    }
    let largest = trainer
        .critic()
        .convs
        .iter()
        .map(|c| c.ws.abs().max().double_value(&[]))
        .fold(0.0, f64::max);
    assert!(
        largest <= 0.01 + 1e-9 && largest > 0.0,
        "largest critic weight {largest}"
    );
}

#[test]
fn checkpoint_round_trip_reproduces_generator_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (data, provenance) = demo_training_data();
    let config = tiny_run(quick_gp(6), provenance);
    let mut trainer = Trainer::new(config.clone(), &data, Device::Cpu).unwrap();
    for _ in 0..6 {
        trainer.step().unwrap();
    }
    trainer.save_checkpoint(dir.path()).unwrap();
    io::write_json(&dir.path().join(CONFIG_FILE), &config).unwrap();
    let z = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
    let original = tch::no_grad(|| trainer.generator().forward(&z, false));
    let loaded = load_gan(dir.path(), Device::Cpu).unwrap();
    let restored = tch::no_grad(|| loaded.generator.forward(&z, false));
    assert_eq!(loaded.iteration, 6);
    assert!(
        original.equal(&restored),
        "generator outputs differ after a checkpoint round trip"
    );
    let x = data.images.narrow(0, 0, 8);
    assert!(trainer
        .critic()
        .forward(&x)
        .equal(&loaded.critic.forward(&x)));
}

fn checkpoint_tensors(dir: &std::path::Path) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<_> = io::load_tensors(&dir.join(CHECKPOINT_FILE))
        .unwrap()
        .into_iter()
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

#[test]
fn kill_and_resume_equals_an_uninterrupted_run() {
    let (data, provenance) = demo_training_data();
    for config in [
        tiny_run(quick_gp(11), provenance.clone()),
        tiny_run(
            TrainConfig {
                iterations: 11,
                batch_size: 16,
                seed: 5,
                checkpoint_every: 4,
                ..TrainConfig::default()
            },
            provenance.clone(),
        ),
    ] {
        let whole = tempfile::tempdir().unwrap();
        train_on_cpu(whole.path(), &config, &data, false).unwrap();

        // Killed after iteration 10, between checkpoints: the last checkpoint is iteration 8.
        let killed = tempfile::tempdir().unwrap();
        let mut kill_at_10 = |p: &Progress| {
            if p.iteration == 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let outcome = train::train(
            killed.path(),
            &config,
            &data,
            Device::Cpu,
            train::TrainOptions::default(),
            &mut kill_at_10,
        )
        .unwrap();
        assert!(outcome.interrupted);
        assert_eq!(load_gan(killed.path(), Device::Cpu).unwrap().iteration, 8);
        let resumed = train_on_cpu(killed.path(), &config, &data, true).unwrap();
        assert_eq!(resumed.iteration, 11);

        let (a, b) = (
            checkpoint_tensors(whole.path()),
            checkpoint_tensors(killed.path()),
        );
        assert_eq!(a.len(), b.len());
        for ((name_a, ta), (name_b, tb)) in a.iter().zip(&b) {
            assert_eq!(name_a, name_b);
            assert!(
                ta.equal(tb),
                "{name_a} differs between the resumed and the uninterrupted run"
            );
        }
        let log = |d: &std::path::Path| std::fs::read_to_string(d.join("losses.csv")).unwrap();
        assert_eq!(log(whole.path()), log(killed.path()));
        assert_eq!(log(whole.path()).lines().count(), 12);
    }
}

#[test]
fn resume_refuses_another_configuration_and_fresh_runs_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (data, provenance) = demo_training_data();
    let config = tiny_run(quick_gp(4), provenance);
    train_on_cpu(dir.path(), &config, &data, false).unwrap();

    let err = common::error_text(train_on_cpu(dir.path(), &config, &data, false));
    assert!(err.contains("already holds a training run"), "{err}");

    let mut other = config.clone();
    other.train.seed += 1;
    let err = common::error_text(train_on_cpu(dir.path(), &other, &data, true));
    assert!(
        err.contains("config.json") && err.contains("train.seed: 11 -> 12"),
        "the differing setting is named: {err}"
    );

    let mut wider = config.clone();
    wider.model.width = 16;
    let err = common::error_text(train_on_cpu(dir.path(), &wider, &data, true));
    assert!(err.contains("width: 8 -> 16"), "{err}");

    // A config.json edited to another architecture: loading names the checkpoint and the cause.
    io::write_json(&dir.path().join(CONFIG_FILE), &wider).unwrap();
    let err = common::error_text(load_gan(dir.path(), Device::Cpu));
    assert!(
        err.contains(CHECKPOINT_FILE) && err.contains("do not belong together"),
        "{err}"
    );
    // One that claims a network too large to build is refused before anything is allocated.
    let mut huge = config.clone();
    huge.model.width = 1_000_000;
    io::write_json(&dir.path().join(CONFIG_FILE), &huge).unwrap();
    let err = common::error_text(load_gan(dir.path(), Device::Cpu));
    assert!(
        err.contains(CONFIG_FILE) && err.contains("width 1000000 is out of range"),
        "{err}"
    );

    // A truncated checkpoint.
    io::write_json(&dir.path().join(CONFIG_FILE), &config).unwrap();
    let path = dir.path().join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = common::error_text(load_gan(dir.path(), Device::Cpu));
    assert!(
        err.contains(CHECKPOINT_FILE) && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (data, provenance) = demo_training_data();
    let config = tiny_run(quick_gp(3), provenance);
    let mut trainer = Trainer::new(config, &data, Device::Cpu).unwrap();
    trainer.step().unwrap();
    trainer.save_checkpoint(dir.path()).unwrap();
    let saved = std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap();
    tch::no_grad(|| {
        for mut w in trainer.generator_vs().trainable_variables() {
            let _ = w.fill_(f64::NAN);
        }
    });
    let err = common::error_text(trainer.step());
    assert!(err.contains("diverged at iteration 2"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap(),
        saved
    );

    // Through `train`: a learning rate that explodes is reported with the checkpoint to keep
    // and advice that fits the objective; one that is not a number is refused before training.
    let (data, provenance) = demo_training_data();
    let mut config = tiny_run(quick_gp(3), provenance);
    config.train.checkpoint_every = 1;
    config.train.optimizer = OptimizerConfig::adam(1e30, 0.5, 0.9);
    let run = tempfile::tempdir().unwrap();
    let err = common::error_text(train_on_cpu(run.path(), &config, &data, false));
    assert!(
        err.contains("diverged at iteration 1")
            && err.contains("no checkpoint was written yet")
            && err.contains("weight-clipping objective"),
        "the advice is true for the case: {err}"
    );
    config.train.optimizer = OptimizerConfig::adam(f64::INFINITY, 0.5, 0.9);
    let run = tempfile::tempdir().unwrap();
    let err = common::error_text(train_on_cpu(run.path(), &config, &data, false));
    assert!(
        err.contains("learning rate must be positive and finite"),
        "{err}"
    );
    assert!(!run.path().join(CHECKPOINT_FILE).exists());
}

#[test]
fn sample_grids_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let (data, provenance) = demo_training_data();
    let mut config = tiny_run(quick_gp(4), provenance);
    config.train.sample_every = 2;
    train_on_cpu(dir.path(), &config, &data, false).unwrap();
    for t in [2, 4] {
        let grid =
            image::open(dir.path().join("samples").join(format!("iter_{t:06}.png"))).unwrap();
        assert_eq!((grid.width(), grid.height()), (8 * 34 + 2, 8 * 34 + 2));
    }
}

/// A run recorded with its data folder spelled one way is resumable with another spelling of
/// the same folder (another checkout's path), and not with another folder.
#[test]
fn the_same_data_folder_spelled_otherwise_resumes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["data", "other", "checkout"] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
    }
    let (_, provenance) = demo_training_data();
    let with_root = |root: std::path::PathBuf| {
        let data = train::DataProvenance {
            source: adgan::data::DataSource::Folder { root },
            ..provenance.clone()
        };
        tiny_run(quick_gp(6), data)
    };
    let saved = with_root(tmp.path().join("checkout/../data"));
    let run_dir = tmp.path().join("run");
    with_root(tmp.path().join("data"))
        .check_resumable(&saved, &run_dir)
        .unwrap();
    let err = with_root(tmp.path().join("other"))
        .check_resumable(&saved, &run_dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.source"), "{err}");
}
