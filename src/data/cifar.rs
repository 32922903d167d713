//! The CIFAR-10 "binary version" (Krizhevsky 2009): `data_batch_1.bin` .. `data_batch_5.bin`
//! and `test_batch.bin`, each a run of 3073-byte records (a label byte, then the 32x32 red,
//! green and blue planes), in a folder or inside `cifar-10-binary.tar.gz`.

use super::{RawImages, Split};
use anyhow::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;

/// The ten class names, in label order.
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn batch_names(split: Split) -> Vec<String> {
    match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    }
}

/// Decodes the records of one batch file into `pixels` (HWC) and `labels`.
fn decode_batch(
    bytes: &[u8],
    origin: &str,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<()> {
    ensure!(
        !bytes.is_empty() && bytes.len().is_multiple_of(RECORD),
        "{origin} has {} bytes, not a whole number of {RECORD}-byte CIFAR-10 records: the file \
         is truncated or not a CIFAR-10 binary batch",
        bytes.len()
    );
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        let label = record[0];
        ensure!(
            (label as usize) < CLASS_NAMES.len(),
            "{origin}: record {i} has label {label}, CIFAR-10 labels are 0..9 (is this CIFAR-100?)"
        );
        labels.push(label);
        let planes = &record[1..];
        for p in 0..PLANE {
            pixels.extend_from_slice(&[planes[p], planes[PLANE + p], planes[2 * PLANE + p]]);
        }
    }
    Ok(())
}

/// Reads one split from a folder of `.bin` batches (or its `cifar-10-batches-bin` subfolder)
/// or from the `cifar-10-binary.tar.gz` archive.
pub fn read(path: &Path, split: Split) -> Result<(RawImages, Vec<u8>)> {
    let wanted = batch_names(split);
    let batches = if path.is_dir() {
        read_from_dir(path, &wanted)?
    } else if path.is_file() {
        read_from_tar_gz(path, &wanted)?
    } else {
        bail!("CIFAR-10 path {} does not exist", path.display());
    };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (origin, bytes) in &batches {
        decode_batch(bytes, origin, &mut pixels, &mut labels)?;
    }
    let images = RawImages {
        count: labels.len(),
        height: SIDE,
        width: SIDE,
        channels: 3,
        pixels,
    };
    Ok((images, labels))
}

fn read_from_dir(dir: &Path, wanted: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
    let nested = dir.join("cifar-10-batches-bin");
    let dir: PathBuf = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    wanted
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "cannot read {}: a CIFAR-10 binary folder holds data_batch_1..5.bin and \
                     test_batch.bin",
                    path.display()
                )
            })?;
            Ok((path.display().to_string(), bytes))
        })
        .collect()
}

fn read_from_tar_gz(archive: &Path, wanted: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot open {}", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut found = BTreeMap::new();
    let broken = || {
        format!(
            "{} is not a readable .tar.gz archive (truncated or corrupt)",
            archive.display()
        )
    };
    for entry in tar.entries().with_context(broken)? {
        let mut entry = entry.with_context(broken)?;
        let entry_path = entry.path().with_context(broken)?.into_owned();
        let Some(name) = entry_path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(pos) = wanted.iter().position(|w| w == name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).with_context(broken)?;
            found.insert(
                pos,
                (
                    format!("{}:{}", archive.display(), entry_path.display()),
                    bytes,
                ),
            );
        }
    }
    if found.len() != wanted.len() {
        let missing: Vec<_> = (0..wanted.len())
            .filter(|i| !found.contains_key(i))
            .map(|i| wanted[i].as_str())
            .collect();
        bail!("{} lacks {}", archive.display(), missing.join(", "));
    }
    Ok(found.into_values().collect())
}

/// Writes images (32x32 RGB, HWC) and labels as one CIFAR-10 binary batch file.
pub fn write_batch(path: &Path, images: &RawImages, labels: &[u8]) -> Result<()> {
    ensure!(
        images.height == SIDE && images.width == SIDE && images.channels == 3,
        "CIFAR-10 batches hold 32x32 RGB images"
    );
    ensure!(labels.len() == images.count, "one label per image");
    let mut bytes = Vec::with_capacity(images.count * RECORD);
    for (i, &label) in labels.iter().enumerate() {
        bytes.push(label);
        let image = &images.pixels[i * 3 * PLANE..(i + 1) * 3 * PLANE];
        for c in 0..3 {
            bytes.extend(image.iter().skip(c).step_by(3));
        }
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
