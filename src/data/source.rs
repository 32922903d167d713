//! Where images come from, recorded in every run's configuration as data provenance.

use super::{cifar, demo, folder, idx, Dataset, Fit, ImageSpec, RawImages};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The train or test part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training images.
    Train,
    /// Test images.
    Test,
}

/// A data set on disk (or the embedded demo data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataSource {
    /// A folder with MNIST-layout IDX files (MNIST, Fashion-MNIST), raw or `.gz`.
    Mnist {
        /// The folder.
        dir: PathBuf,
    },
    /// The CIFAR-10 binary version: a folder of `.bin` batches or `cifar-10-binary.tar.gz`.
    Cifar10 {
        /// Folder or archive.
        path: PathBuf,
    },
    /// One IDX image file with an optional IDX label file (the same for every split).
    Idx {
        /// N x H x W image file.
        images: PathBuf,
        /// Label file.
        labels: Option<PathBuf>,
    },
    /// PNG/JPEG images: `root/<class>/*` or flat; `root/train` and `root/test` select splits.
    Folder {
        /// The folder.
        root: PathBuf,
    },
    /// The embedded procedural images (see [`demo`]); nothing is read from disk.
    Demo {
        /// Seed of the generator.
        seed: u64,
    },
}

fn labels_to_i64(labels: &[u8]) -> Vec<i64> {
    labels.iter().map(|&l| l as i64).collect()
}

fn array_ids(split: Split, n: usize) -> Vec<String> {
    let name = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    (0..n).map(|i| format!("{name}:{i}")).collect()
}

fn folder_for_split(root: &Path, split: Split) -> PathBuf {
    let sub = root.join(match split {
        Split::Train => "train",
        Split::Test => "test",
    });
    if sub.is_dir() {
        sub
    } else {
        root.to_path_buf()
    }
}

impl DataSource {
    /// Reads `split` and converts it to the model's size and channels in [-1, 1].
    pub fn load(&self, split: Split, spec: ImageSpec, fit: Fit) -> Result<Dataset> {
        let arrays = |raw: RawImages, labels: Vec<i64>, class_names: Vec<String>| {
            let ids = array_ids(split, raw.count);
            Ok::<_, anyhow::Error>(Dataset {
                images: raw.to_model_input(spec, fit)?,
                labels: Some(labels),
                ids,
                class_names,
            })
        };
        let digits = || (0..10).map(|d| d.to_string()).collect::<Vec<_>>();
        match self {
            DataSource::Mnist { dir } => {
                let (raw, labels) = idx::read_mnist_dir(dir, split)?;
                arrays(raw, labels_to_i64(&labels), digits())
            }
            DataSource::Cifar10 { path } => {
                let (raw, labels) = cifar::read(path, split)?;
                let names = cifar::CLASS_NAMES.iter().map(|s| s.to_string()).collect();
                arrays(raw, labels_to_i64(&labels), names)
            }
            DataSource::Idx { images, labels } => {
                let raw = idx::read_images(images)?;
                let labels = match labels {
                    Some(path) => {
                        let l = idx::read_labels(path)?;
                        ensure!(
                            l.len() == raw.count,
                            "{} holds {} labels for {} images in {}",
                            path.display(),
                            l.len(),
                            raw.count,
                            images.display()
                        );
                        Some(labels_to_i64(&l))
                    }
                    None => None,
                };
                let ids = array_ids(split, raw.count);
                Ok(Dataset {
                    images: raw.to_model_input(spec, fit)?,
                    labels,
                    ids,
                    class_names: Vec::new(),
                })
            }
            DataSource::Folder { root } => load_folder(&folder_for_split(root, split), spec, fit),
            DataSource::Demo { seed } => {
                let (raw, labels) = demo::generate(split, *seed);
                let names = demo::CLASS_NAMES.iter().map(|s| s.to_string()).collect();
                arrays(raw, labels_to_i64(&labels), names)
            }
        }
    }

    /// A one-line description for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Mnist { dir } => format!("mnist:{}", dir.display()),
            DataSource::Cifar10 { path } => format!("cifar10:{}", path.display()),
            DataSource::Idx { images, .. } => format!("idx:{}", images.display()),
            DataSource::Folder { root } => format!("folder:{}", root.display()),
            DataSource::Demo { seed } => format!("demo:seed={seed}"),
        }
    }
}

/// Reads every image under `root` (flat, or class subfolders: see [`folder::list`]), without
/// looking for train/test splits, fitted to `spec`.
pub fn load_folder(root: &Path, spec: ImageSpec, fit: Fit) -> Result<Dataset> {
    let read = folder::read(root, spec.channels as usize)?;
    Ok(Dataset {
        images: read.images.to_model_input(spec, fit)?,
        labels: read.labels.as_deref().map(labels_to_i64),
        ids: read.paths.iter().map(|p| p.display().to_string()).collect(),
        class_names: read.class_names,
    })
}

/// A folder of images read a chunk at a time, so that scoring a large collection keeps only
/// the chunk in memory (issue 6: memory grows with the batch, not with the data).
pub struct FolderStream {
    root: PathBuf,
    listing: folder::Listing,
    spec: ImageSpec,
    fit: Fit,
    size: Option<(usize, usize)>,
}

impl FolderStream {
    /// Lists the images of `root` (see [`folder::list`]); nothing is decoded yet.
    pub fn open(root: &Path, spec: ImageSpec, fit: Fit) -> Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            listing: folder::list(root)?,
            spec,
            fit,
            size: None,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.listing.paths.len()
    }

    /// Whether the folder has no images (never true: [`FolderStream::open`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.listing.paths.is_empty()
    }

    /// The path of each image, as ids.
    pub fn ids(&self) -> Vec<String> {
        self.listing
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    /// The class index of each image, for a folder with class subfolders.
    pub fn labels(&self) -> Option<Vec<i64>> {
        self.listing.labels.as_deref().map(labels_to_i64)
    }

    /// The images at `indices`, as model input.
    pub fn images(&mut self, indices: &[usize]) -> Result<Tensor> {
        let paths: Vec<PathBuf> = indices
            .iter()
            .map(|&i| self.listing.paths[i].clone())
            .collect();
        let raw = folder::read_files(
            &paths,
            self.spec.channels as usize,
            &self.root,
            &mut self.size,
        )?;
        raw.to_model_input(self.spec, self.fit)
    }
}

impl crate::score::ImageSource for FolderStream {
    fn len(&self) -> usize {
        FolderStream::len(self)
    }

    fn images(&mut self, start: usize, len: usize) -> Result<Tensor> {
        let indices: Vec<usize> = (start..start + len).collect();
        FolderStream::images(self, &indices)
    }
}
