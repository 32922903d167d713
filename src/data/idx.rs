//! The IDX format of MNIST and Fashion-MNIST (LeCun et al.), raw or gzip-compressed.
//!
//! A file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
//! big-endian u32 per dimension, then the values. Only unsigned bytes (type 0x08) are used by
//! these data sets, so only they are read.

use super::{RawImages, Split};
use anyhow::{bail, ensure, Context, Result};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const UNSIGNED_BYTE: u8 = 0x08;

/// Reads a whole file, decompressing it when it starts with the gzip magic (whatever its name).
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .with_context(|| {
                format!(
                    "{} is not a complete gzip file (truncated or corrupt); download it again",
                    path.display()
                )
            })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Parses an IDX byte buffer with `ndims` dimensions; returns the dimensions and the values.
fn parse_idx<'a>(bytes: &'a [u8], ndims: usize, path: &Path) -> Result<(Vec<usize>, &'a [u8])> {
    let name = path.display();
    ensure!(
        bytes.len() >= 4,
        "{name} is too short to be an IDX file ({} bytes)",
        bytes.len()
    );
    let magic = &bytes[..4];
    if magic[0] != 0 || magic[1] != 0 || magic[2] != UNSIGNED_BYTE || magic[3] as usize != ndims {
        bail!(
            "{name} has IDX magic {:02x}{:02x}{:02x}{:02x}, expected 000008{:02x} (unsigned bytes, \
             {ndims} dimensions): is this the right file (images vs labels)?",
            magic[0],
            magic[1],
            magic[2],
            magic[3],
            ndims
        );
    }
    let header_len = 4 + 4 * ndims;
    ensure!(
        bytes.len() >= header_len,
        "{name} is truncated inside its IDX header"
    );
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .with_context(|| format!("{name} has an impossible IDX header: dimensions {dims:?}"))?;
    ensure!(
        dims.iter().skip(1).all(|&d| d > 0),
        "{name} has an IDX header with an empty dimension ({dims:?}): the file is corrupt"
    );
    let data = &bytes[header_len..];
    ensure!(
        data.len() >= expected,
        "{name} is truncated: the header promises {expected} values ({dims:?}) but only {} bytes \
         follow; download the file again",
        data.len()
    );
    Ok((dims, &data[..expected]))
}

/// Reads an IDX image file (3 dimensions: N x H x W, grey).
pub fn read_images(path: &Path) -> Result<RawImages> {
    let bytes = read_maybe_gzip(path)?;
    let (dims, data) = parse_idx(&bytes, 3, path)?;
    Ok(RawImages {
        count: dims[0],
        height: dims[1],
        width: dims[2],
        channels: 1,
        pixels: data.to_vec(),
    })
}

/// Reads an IDX label file (1 dimension).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gzip(path)?;
    Ok(parse_idx(&bytes, 1, path)?.1.to_vec())
}

/// Writes an IDX file of unsigned bytes with the given dimensions, gzip-compressed if asked.
pub fn write(path: &Path, dims: &[usize], values: &[u8], gzip: bool) -> Result<()> {
    ensure!(
        dims.iter().product::<usize>() == values.len(),
        "IDX dimensions {dims:?} do not match {} values",
        values.len()
    );
    let mut bytes = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
    for &d in dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(values);
    if gzip {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&bytes)?;
        bytes = encoder.finish()?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Finds `<prefix>-<kind>-ubyte` or the same with `.gz` in `dir`.
fn find_mnist_file(dir: &Path, prefix: &str, kind: &str) -> Result<PathBuf> {
    let base = format!("{prefix}-{kind}-ubyte");
    for name in [format!("{base}.gz"), base.clone()] {
        let path = dir.join(&name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "{} has no {base} or {base}.gz: give the folder that holds the MNIST (or \
         Fashion-MNIST) IDX files",
        dir.display()
    )
}

/// Reads one split of an MNIST-layout folder (`train-images-idx3-ubyte[.gz]`, `t10k-...`).
pub fn read_mnist_dir(dir: &Path, split: Split) -> Result<(RawImages, Vec<u8>)> {
    ensure!(
        dir.is_dir(),
        "MNIST folder {} does not exist",
        dir.display()
    );
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images_path = find_mnist_file(dir, prefix, "images-idx3")?;
    let labels_path = find_mnist_file(dir, prefix, "labels-idx1")?;
    let images = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    ensure!(
        labels.len() == images.count,
        "{} holds {} labels but {} holds {} images",
        labels_path.display(),
        labels.len(),
        images_path.display(),
        images.count
    );
    Ok((images, labels))
}
