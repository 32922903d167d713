//! `adgan info`: the configuration and state of a run folder.

use adgan::calibration::Calibration;
use adgan::run;
use adgan::score::adgan::Precision;
use adgan::score::kept::kept_in;
use adgan::train::CONFIG_FILE;
use anyhow::{bail, Result};
use std::path::Path;

pub(crate) fn run(path: &Path) -> Result<()> {
    let run_dir = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    if !run_dir.join(CONFIG_FILE).is_file() {
        bail!(
            "{} is not an adgan run folder: it has no {CONFIG_FILE}",
            run_dir.display()
        );
    }
    let gan = run::load_gan(run_dir, tch::Device::Cpu)?;
    let count = |vs: &tch::nn::VarStore| {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum::<usize>()
    };
    println!("run folder:   {}", run_dir.display());
    println!(
        "iterations:   {} of {}",
        gan.iteration, gan.config.train.iterations
    );
    println!("generator:    {} parameters", count(&gan.generator_vs));
    println!("critic:       {} parameters", count(&gan.critic_vs));
    println!(
        "data:         {} images from {}",
        gan.config.data.n_images,
        gan.config.data.source.describe()
    );
    print_scoring(run_dir)?;
    println!(
        "configuration:\n{}",
        serde_json::to_string_pretty(&gan.config)?
    );
    Ok(())
}

/// What the run can score with: its calibration (p-values for which methods, under which
/// search), its ensemble, and the baselines kept in it.
fn print_scoring(run_dir: &Path) -> Result<()> {
    match Calibration::load(run_dir)? {
        None => println!(
            "calibration:  none (scores only; `adgan calibrate` adds p-values and decisions)"
        ),
        Some(c) => {
            let s = &c.search;
            let methods = match c.lengths.is_empty() {
                true => "adgan",
                false => "adgan and adgan-ic",
            };
            println!(
                "calibration:  {} normal images ({}): p-values for {methods} under the search \
                 n_seed {} k {} lr_z {} lr_theta {}{}",
                c.scores.len(),
                c.origin,
                s.n_seed,
                s.k,
                s.lr_z,
                s.lr_theta,
                match s.precision {
                    Precision::F32 => "",
                    Precision::Bf16 => " (bf16)",
                }
            );
            match &c.ensemble {
                Some(e) => println!(
                    "ensemble:     {}, PCA d' {}, calibrated on {} of those images",
                    e.ensemble.config.label(),
                    e.pca_dim,
                    e.scores.len()
                ),
                None => {
                    println!("ensemble:     not calibrated (`adgan calibrate --method ensemble`)")
                }
            }
        }
    }
    for (name, kept) in kept_in(run_dir) {
        match kept {
            Ok(kept) => println!(
                "kept:         {} on {} features, PCA d' {}, fitted on {} training images ({})",
                kept.method.name(),
                kept.features,
                kept.pca_dim,
                kept.images,
                kept.created
            ),
            Err(e) => println!(
                "kept:         {name}: unreadable ({e:#}); delete its folder to fit it again"
            ),
        }
    }
    Ok(())
}
