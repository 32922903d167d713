//! `adgan info`: the configuration and state of a run folder.

use adgan::run;
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
    println!(
        "configuration:\n{}",
        serde_json::to_string_pretty(&gan.config)?
    );
    Ok(())
}
