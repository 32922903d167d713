//! Where images come from, recorded in every run's configuration as data provenance.

use super::folder::OnBadFile;
use super::split::Shard;
use super::{
    cifar, demo, folder, id_of_path, idx, Dataset, Fit, ImageSpec, RawImages, SkippedImage,
};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The train or test part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
    /// The data source of kind `kind` (`mnist`, `cifar10`, `idx`, `folder`, `demo`) at `path`
    /// (with `labels` for `idx`; the demo's shapes drawn with `seed`), its paths made absolute
    /// because a run records them and is used later from other folders.
    pub fn named(
        kind: &str,
        path: Option<&Path>,
        labels: Option<&Path>,
        seed: u64,
    ) -> Result<DataSource> {
        let absolute = |p: &Path| {
            std::path::absolute(p)
                .map_err(|e| anyhow::anyhow!("cannot resolve the path {}: {e}", p.display()))
        };
        let path = || match path {
            Some(p) => absolute(p),
            None => Err(crate::setting::BadSetting {
                name: "data",
                message: format!("a data set of kind {kind} needs the path of its data"),
            }
            .into()),
        };
        Ok(match kind {
            "mnist" => DataSource::Mnist { dir: path()? },
            "cifar10" => DataSource::Cifar10 { path: path()? },
            "idx" => DataSource::Idx {
                images: path()?,
                labels: labels.map(absolute).transpose()?,
            },
            "folder" => DataSource::Folder { root: path()? },
            "demo" => DataSource::Demo { seed },
            other => {
                return Err(crate::setting::BadSetting {
                    name: "dataset",
                    message: format!(
                        "unknown kind of data set {other:?}: mnist, cifar10, idx, folder or demo"
                    ),
                }
                .into())
            }
        })
    }

    /// Channels of a model of this data by default: grey for MNIST-like data, RGB otherwise.
    pub fn default_channels(&self) -> i64 {
        match self {
            DataSource::Mnist { .. } | DataSource::Idx { .. } => 1,
            _ => 3,
        }
    }

    /// Reads `split` and converts it to the model's size and channels in [-1, 1].
    pub fn load(&self, split: Split, spec: ImageSpec, fit: Fit) -> Result<Dataset> {
        let arrays = |raw: RawImages, labels: Vec<i64>, class_names: Vec<String>| {
            let ids = array_ids(split, raw.count);
            Ok::<_, anyhow::Error>(Dataset {
                images: raw.to_model_input(spec, fit)?,
                labels: Some(labels),
                ids,
                class_names,
                skipped: Vec::new(),
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
                    skipped: Vec::new(),
                })
            }
            DataSource::Folder { root } => {
                load_folder(&folder_for_split(root, split), spec, fit, OnBadFile::Skip)
            }
            DataSource::Demo { seed } => {
                let (raw, labels) = demo::generate(split, *seed);
                let names = demo::CLASS_NAMES.iter().map(|s| s.to_string()).collect();
                arrays(raw, labels_to_i64(&labels), names)
            }
        }
    }

    /// The same source with its paths resolved (`..`, `.` and links, where they exist), so
    /// that one folder reached by two spellings compares equal: a run or an experiment records
    /// its data as the absolute path it was given, and is continued from other folders.
    pub fn normalised(&self) -> DataSource {
        // A path that cannot be resolved (gone, unreadable) stays as it was: compared as
        // given, it still matches itself.
        let resolve = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        match self {
            DataSource::Mnist { dir } => DataSource::Mnist { dir: resolve(dir) },
            DataSource::Cifar10 { path } => DataSource::Cifar10 {
                path: resolve(path),
            },
            DataSource::Idx { images, labels } => DataSource::Idx {
                images: resolve(images),
                labels: labels.as_ref().map(resolve),
            },
            DataSource::Folder { root } => DataSource::Folder {
                root: resolve(root),
            },
            DataSource::Demo { seed } => DataSource::Demo { seed: *seed },
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
/// looking for train/test splits, each fitted to `spec` (so sizes may differ). A file that
/// cannot be read is left out and listed in [`Dataset::skipped`], or stops the load with
/// [`OnBadFile::Fail`]; no readable image at all is an error.
pub fn load_folder(root: &Path, spec: ImageSpec, fit: Fit, on_bad: OnBadFile) -> Result<Dataset> {
    let listing = folder::list(root)?;
    let (mut images, mut kept, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (i, path) in listing.paths.iter().enumerate() {
        match folder::read_fitted(path, spec, fit) {
            Ok(image) => {
                images.push(image);
                kept.push(i);
            }
            Err(e) if on_bad == OnBadFile::Skip => skipped.push(SkippedImage {
                id: id_of_path(path),
                reason: format!("{e:#}"),
            }),
            Err(e) => return Err(e),
        }
    }
    ensure!(
        !images.is_empty(),
        "none of the {} image files under {} could be read (the first: {})",
        listing.paths.len(),
        root.display(),
        skipped.first().map_or("", |s| s.reason.as_str())
    );
    Ok(Dataset {
        images: Tensor::cat(&images, 0),
        labels: listing
            .labels
            .as_deref()
            .map(|l| kept.iter().map(|&i| i64::from(l[i])).collect()),
        ids: kept
            .iter()
            .map(|&i| id_of_path(&listing.paths[i]))
            .collect(),
        class_names: listing.class_names,
        skipped,
    })
}

/// A folder of images read a chunk at a time, so that scoring a large collection keeps only
/// the chunk in memory (issue 6: memory grows with the batch, not with the data).
///
/// Files whose header cannot be read are found when the folder is opened, before any work; a
/// file that fails later, while it is decoded, is replaced by a black image so that the batch
/// keeps its rows. Either way the file is listed by [`FolderStream::skipped`], and its score
/// must not be reported (or, with [`OnBadFile::Fail`], the first such file is an error).
pub struct FolderStream {
    listing: folder::Listing,
    spec: ImageSpec,
    fit: Fit,
    on_bad: OnBadFile,
    /// Index of each unreadable file, and why.
    skipped: std::collections::BTreeMap<usize, String>,
}

impl FolderStream {
    /// Lists the images of `root` (see [`folder::list`]) and reads the header of each; no image
    /// is decoded yet.
    pub fn open(root: &Path, spec: ImageSpec, fit: Fit, on_bad: OnBadFile) -> Result<Self> {
        Self::open_shard(root, spec, fit, on_bad, Shard::WHOLE)
    }

    /// [`FolderStream::open`] for one `shard` of the sorted list of images.
    pub fn open_shard(
        root: &Path,
        spec: ImageSpec,
        fit: Fit,
        on_bad: OnBadFile,
        shard: Shard,
    ) -> Result<Self> {
        let mut listing = folder::list(root)?;
        let range = shard.range(listing.paths.len());
        ensure!(
            !range.is_empty(),
            "shard {shard} of the {} images under {} is empty: use fewer shards",
            listing.paths.len(),
            root.display()
        );
        listing.paths = listing.paths[range.clone()].to_vec();
        if let Some(labels) = &mut listing.labels {
            *labels = labels[range].to_vec();
        }
        let mut skipped = std::collections::BTreeMap::new();
        for (i, path) in listing.paths.iter().enumerate() {
            if let Err(e) = folder::probe(path) {
                if on_bad == OnBadFile::Fail {
                    return Err(e);
                }
                skipped.insert(i, format!("{e:#}"));
            }
        }
        ensure!(
            skipped.len() < listing.paths.len(),
            "none of the {} image files under {} can be read",
            listing.paths.len(),
            root.display()
        );
        Ok(Self {
            listing,
            spec,
            fit,
            on_bad,
            skipped,
        })
    }

    /// Number of images (unreadable ones included: they keep their rows).
    pub fn len(&self) -> usize {
        self.listing.paths.len()
    }

    /// Whether the folder has no images (never true: [`FolderStream::open`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.listing.paths.is_empty()
    }

    /// The path of each image, as ids ([`id_of_path`]).
    pub fn ids(&self) -> Vec<String> {
        self.listing.paths.iter().map(|p| id_of_path(p)).collect()
    }

    /// The class index of each image, for a folder with class subfolders.
    pub fn labels(&self) -> Option<Vec<i64>> {
        self.listing.labels.as_deref().map(labels_to_i64)
    }

    /// The files found unreadable so far (at opening, and while decoding), by index.
    pub fn skipped(&self) -> Vec<(usize, SkippedImage)> {
        self.skipped
            .iter()
            .map(|(&i, reason)| {
                let id = id_of_path(&self.listing.paths[i]);
                let reason = reason.clone();
                (i, SkippedImage { id, reason })
            })
            .collect()
    }

    /// The images at `indices`, as model input (a black image for an unreadable file).
    pub fn images(&mut self, indices: &[usize]) -> Result<Tensor> {
        let mut images = Vec::with_capacity(indices.len());
        for &i in indices {
            let read = if self.skipped.contains_key(&i) {
                None
            } else {
                match folder::read_fitted(&self.listing.paths[i], self.spec, self.fit) {
                    Ok(image) => Some(image),
                    Err(e) if self.on_bad == OnBadFile::Skip => {
                        self.skipped.insert(i, format!("{e:#}"));
                        None
                    }
                    Err(e) => return Err(e),
                }
            };
            let (c, s) = (self.spec.channels, self.spec.size);
            images.push(read.unwrap_or_else(|| {
                Tensor::full([1, c, s, s], -1.0, (tch::Kind::Float, tch::Device::Cpu))
            }));
        }
        Ok(Tensor::cat(&images, 0))
    }
}

impl super::ImageSource for FolderStream {
    fn len(&self) -> usize {
        FolderStream::len(self)
    }

    fn images(&mut self, start: usize, len: usize) -> Result<Tensor> {
        let indices: Vec<usize> = (start..start + len).collect();
        FolderStream::images(self, &indices)
    }

    fn images_at(&mut self, indices: &[usize]) -> Result<Tensor> {
        FolderStream::images(self, indices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_spellings_of_one_folder_normalise_alike() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/mnist")).unwrap();
        std::fs::create_dir_all(tmp.path().join("b")).unwrap();
        let direct = DataSource::Mnist {
            dir: tmp.path().join("a/mnist"),
        };
        let around = DataSource::Mnist {
            dir: tmp.path().join("b/../a/./mnist"),
        };
        assert_ne!(direct, around);
        assert_eq!(direct.normalised(), around.normalised());
        let other = DataSource::Mnist {
            dir: tmp.path().join("b"),
        };
        assert_ne!(direct.normalised(), other.normalised());
        // A folder that is gone is compared as it was written.
        let gone = DataSource::Folder {
            root: tmp.path().join("gone/../x"),
        };
        assert_eq!(gone.normalised(), gone);
    }
}
