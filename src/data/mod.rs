//! Data: readers for the formats the paper uses, conversion to model input, and splits.
//!
//! Every reader returns [`RawImages`] (8-bit pixels as stored) with optional labels; a
//! [`Dataset`] is the same collection converted to the model's size and channels and scaled to
//! [-1, 1], which is what the WGAN of the paper is trained on.

pub mod cifar;
pub mod demo;
pub mod folder;
pub mod idx;
mod source;
mod split;

pub use folder::OnBadFile;
pub use source::{load_folder, DataSource, FolderStream, Split};
pub use split::{
    draw_test, hold_out, holdout_size, normal_class_index, one_vs_all, only_class, other_classes,
    CalibrationSplit, OneVsAll, Shard, ValidationSplit,
};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Where the images to score come from: a tensor in memory, or a folder read a batch at a time
/// ([`FolderStream`]), so memory grows with the batch and not with the data.
pub trait ImageSource {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `start..start + len` as model input (N x C x H x W in [-1, 1]).
    fn images(&mut self, start: usize, len: usize) -> Result<Tensor>;

    /// The images at `indices`, in that order.
    fn images_at(&mut self, indices: &[usize]) -> Result<Tensor>;
}

impl ImageSource for &Tensor {
    fn len(&self) -> usize {
        self.size()[0] as usize
    }

    fn images(&mut self, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.narrow(0, start as i64, len as i64))
    }

    fn images_at(&mut self, indices: &[usize]) -> Result<Tensor> {
        let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        Ok(self.index_select(0, &Tensor::from_slice(&index)))
    }
}

/// Images as stored on disk: 8-bit pixels in N x H x W x C order (channels interleaved).
#[derive(Debug, Clone, PartialEq)]
pub struct RawImages {
    /// Number of images N.
    pub count: usize,
    /// Height H in pixels.
    pub height: usize,
    /// Width W in pixels.
    pub width: usize,
    /// Channels C: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// N * H * W * C bytes.
    pub pixels: Vec<u8>,
}

impl RawImages {
    /// Bytes taken by one image.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Converts to a float tensor N x C x H x W in [-1, 1] with the model's size and channels.
    ///
    /// Channels: grey is repeated to RGB; RGB becomes grey with the ITU-R 601 luma weights.
    /// Size: with [`Fit::Pad`] an image smaller than the model (MNIST's 28x28 into 32x32) is
    /// centred on a black border, which keeps every pixel as it was; otherwise, and with
    /// [`Fit::Resize`], it is resized bilinearly (antialiased when shrinking).
    pub fn to_model_input(&self, spec: ImageSpec, fit: Fit) -> Result<Tensor> {
        let (n, h, w, c) = (
            self.count as i64,
            self.height as i64,
            self.width as i64,
            self.channels as i64,
        );
        let mut x = Tensor::from_slice(&self.pixels)
            .view([n, h, w, c])
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float);
        x = match (c, spec.channels) {
            (a, b) if a == b => x,
            (1, 3) => x.repeat([1, 3, 1, 1]),
            (3, 1) => {
                let luma = Tensor::from_slice(&[0.299f32, 0.587, 0.114]).view([1, 3, 1, 1]);
                (x * luma).sum_dim_intlist(1, true, Kind::Float)
            }
            (a, b) => bail!("cannot convert {a}-channel images to {b} channels"),
        };
        let size = spec.size;
        if h != size || w != size {
            let pad_fits = fit == Fit::Pad && h <= size && w <= size;
            x = if pad_fits {
                let (top, left) = ((size - h) / 2, (size - w) / 2);
                x.constant_pad_nd([left, size - w - left, top, size - h - top])
            } else if h > size || w > size {
                x.internal_upsample_bilinear2d_aa([size, size], false, None, None)
            } else {
                x.upsample_bilinear2d([size, size], false, None, None)
            };
        }
        Ok((x / 127.5 - 1.0).clamp(-1.0, 1.0).contiguous())
    }
}

/// The size and channels a model works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Side of the square image: 32 or 64.
    pub size: i64,
    /// 1 (grey) or 3 (RGB).
    pub channels: i64,
}

/// How an image whose size differs from the model's is brought to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Centre smaller images on a black border (the default: MNIST 28x28 -> 32x32 unchanged
    /// inside a 2-pixel border); larger ones are resized.
    #[default]
    Pad,
    /// Resize bilinearly to the model's size.
    Resize,
}

/// A collection of images ready for a model, with labels when the source has them.
#[derive(Debug)]
pub struct Dataset {
    /// N x C x H x W, float, in [-1, 1], on the CPU.
    pub images: Tensor,
    /// A class index per image, when known.
    pub labels: Option<Vec<i64>>,
    /// An identifier per image: its path for folders, `split:index` for array formats.
    pub ids: Vec<String>,
    /// Name of each class index (may be empty for unlabelled data).
    pub class_names: Vec<String>,
    /// Files of the source that could not be read and were left out (image folders only).
    pub skipped: Vec<SkippedImage>,
}

/// An image file that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedImage {
    /// Its id (the path, see [`id_of_path`]).
    pub id: String,
    /// What went wrong.
    pub reason: String,
}

/// The id of an image file: its path, with every byte that is not UTF-8 written as `\xNN`
/// (and a backslash as `\\`), so that the id is lossless and leads back to the file.
pub fn id_of_path(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut id = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        id.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            id.push_str(&format!("\\x{byte:02X}"));
        }
    }
    id
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The images at `indices`, with their labels and ids, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let index = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
        Dataset {
            images: self.images.index_select(0, &index),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            class_names: self.class_names.clone(),
            skipped: self.skipped.clone(),
        }
    }

    /// A SHA-256 of the image tensor's bytes, recorded in checkpoints as data provenance.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let flat = self.images.contiguous().view([-1]);
        let mut bytes = vec![0u8; flat.numel() * 4];
        flat.copy_data_u8(&mut bytes, flat.numel());
        format!("{:x}", Sha256::digest(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// Ids keep every byte of a file name: bytes that are not UTF-8 are escaped, and so is the
    /// escape character itself, so that two different names never share an id.
    #[test]
    fn ids_of_non_utf8_names_are_lossless() {
        let name = std::ffi::OsStr::from_bytes(b"dir/caf\xe9 \\x.png");
        assert_eq!(
            id_of_path(std::path::Path::new(name)),
            "dir/caf\\xE9 \\\\x.png"
        );
        let plain = std::path::Path::new("dir/ünïcode.png");
        assert_eq!(id_of_path(plain), "dir/ünïcode.png");
        let other = std::ffi::OsStr::from_bytes(b"dir/caf\\xE9 \\x.png");
        assert_ne!(
            id_of_path(std::path::Path::new(other)),
            id_of_path(std::path::Path::new(name))
        );
    }
}
