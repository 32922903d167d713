//! `adgan export`: a trained run as PyTorch state dicts, for use outside adgan.

use super::args::out_error;
use adgan::output::Destination;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Formats a run can be exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// The state dicts of plain PyTorch DCGAN nn.Sequential models, as safetensors.
    Pytorch,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Run folder of a trained GAN (made by `adgan train`).
    #[arg(long)]
    model: PathBuf,
    /// Output file (.safetensors); an existing file is replaced only with --force.
    #[arg(long, short)]
    out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Export format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Pytorch)]
    format: ExportFormat,
}

pub(crate) fn run(args: &ExportArgs) -> Result<()> {
    let Destination::File(path) =
        Destination::check(&args.out, args.force).map_err(out_error("--out", &args.out))?
    else {
        bail!("--out -: an export is a binary file; give a path");
    };
    let gan = adgan::run::load_gan(&args.model, tch::Device::Cpu)?;
    match args.format {
        ExportFormat::Pytorch => adgan::export::export_pytorch(&gan, &path)?,
    }
    let m = gan.config.model;
    println!(
        "exported the generator and critic of {} (iteration {}, {}x{}x{}, width {}, latent {}) to {}",
        args.model.display(),
        gan.iteration,
        m.image_size,
        m.image_size,
        m.channels,
        m.width,
        m.latent_dim,
        path.display()
    );
    Ok(())
}
