//! Image folders (PNG or JPEG): `root/<class>/*.png` gives one label per subfolder (classes in
//! name order), a flat folder gives unlabelled images.

use super::RawImages;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Images read from a folder, with one path per image.
#[derive(Debug)]
pub struct FolderImages {
    /// The pixels, converted to the requested channels.
    pub images: RawImages,
    /// A class index per image when the folder has class subfolders.
    pub labels: Option<Vec<u8>>,
    /// The subfolder names, in label order (empty for a flat folder).
    pub class_names: Vec<String>,
    /// The path of each image.
    pub paths: Vec<PathBuf>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list image folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("cannot list image folder {}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

/// The image files of a folder, with labels when it has class subfolders.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Image paths, class by class, each class in name order.
    pub paths: Vec<PathBuf>,
    /// Class index per image, for class subfolders.
    pub labels: Option<Vec<u8>>,
    /// Subfolder names in label order (empty for a flat folder).
    pub class_names: Vec<String>,
}

/// The entries of a folder named as images, folders aside. A link or special file among them
/// (a FIFO, a device, a dangling link) is kept, so that reading it fails and lists it as
/// skipped with its reason, rather than dropping it without a word.
fn image_entries(entries: &[PathBuf]) -> Vec<PathBuf> {
    entries
        .iter()
        .filter(|p| is_image(p) && !p.is_dir())
        .cloned()
        .collect()
}

/// Refuses anything but a regular file (after links), before it is opened: opening a FIFO
/// would wait for a writer forever, and a device never ends.
fn check_regular_file(path: &Path) -> Result<()> {
    let metadata = std::fs::metadata(path).with_context(|| match path.is_symlink() {
        true => format!("{} is a link to nothing (a dangling link)", path.display()),
        false => format!("cannot read image {}", path.display()),
    })?;
    ensure!(
        metadata.is_file(),
        "{} is not a regular file (a FIFO, socket or device): only image files are read",
        path.display()
    );
    Ok(())
}

/// Lists the images under `root`: its own image files if it has any (unlabelled), else those
/// of each subfolder (labelled by subfolder).
pub fn list(root: &Path) -> Result<Listing> {
    ensure!(
        root.is_dir(),
        "image folder {} does not exist",
        root.display()
    );
    let entries = sorted_entries(root)?;
    let flat = image_entries(&entries);
    if flat.iter().any(|p| p.is_file()) {
        return Ok(Listing {
            paths: flat,
            labels: None,
            class_names: Vec::new(),
        });
    }
    let (mut paths, mut labels, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for dir in entries.iter().filter(|p| p.is_dir()) {
        let files = image_entries(&sorted_entries(dir)?);
        if files.is_empty() {
            continue;
        }
        ensure!(
            names.len() < 256,
            "{} has more than 256 class folders",
            root.display()
        );
        labels.extend(std::iter::repeat_n(names.len() as u8, files.len()));
        names.push(
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        paths.extend(files);
    }
    if paths.is_empty() {
        bail!(
            "{} holds no PNG or JPEG images, neither directly nor in class subfolders",
            root.display()
        );
    }
    Ok(Listing {
        paths,
        labels: Some(labels),
        class_names: names,
    })
}

/// Decodes one image file to `channels` (1 or 3) interleaved 8-bit channels.
pub fn decode(path: &Path, channels: usize) -> Result<(usize, usize, Vec<u8>)> {
    check_regular_file(path)?;
    let image = image::ImageReader::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read image {}", path.display()))?
        .decode()
        .with_context(|| {
            format!(
                "{} is not a readable PNG or JPEG (truncated or corrupt?)",
                path.display()
            )
        })?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    let pixels = match channels {
        1 => image.into_luma8().into_raw(),
        3 => image.into_rgb8().into_raw(),
        c => bail!("images can be read as 1 or 3 channels, not {c}"),
    };
    Ok((h, w, pixels))
}

/// Reads every image under `root` (see [`list`]) as `channels` channels. All images must have
/// the size of the first; a different one is an error naming the file.
pub fn read(root: &Path, channels: usize) -> Result<FolderImages> {
    let Listing {
        paths,
        labels,
        class_names,
    } = list(root)?;
    let images = read_files(&paths, channels, root, &mut None)?;
    Ok(FolderImages {
        images,
        labels,
        class_names,
        paths,
    })
}

/// Decodes `paths` (images of the folder `root`) as `channels` channels. `size` is the size
/// every image must have, set from the first image read when `None`; a different one is an
/// error naming the file.
pub fn read_files(
    paths: &[PathBuf],
    channels: usize,
    root: &Path,
    size: &mut Option<(usize, usize)>,
) -> Result<RawImages> {
    ensure!(!paths.is_empty(), "no images to read in {}", root.display());
    let mut pixels = Vec::new();
    for path in paths {
        let (h, w, data) = decode(path, channels)?;
        match *size {
            None => *size = Some((h, w)),
            Some((h0, w0)) if (h0, w0) != (h, w) => bail!(
                "{} is {w}x{h} but the first image of {} is {w0}x{h0}: all images of a folder \
                 must have one size (resize them, or move the odd one out)",
                path.display(),
                root.display()
            ),
            _ => {}
        }
        pixels.extend_from_slice(&data);
    }
    let (height, width) = size.expect("at least one image was read");
    Ok(RawImages {
        count: paths.len(),
        height,
        width,
        channels,
        pixels,
    })
}

/// Whether a file that cannot be read stops the work or is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadFile {
    /// Leave it out and report it (the default: one bad file must not throw away a job).
    #[default]
    Skip,
    /// Stop with an error naming it.
    Fail,
}

/// Reads the header of an image file (format and size) without decoding it: a cheap check
/// made before any expensive work.
pub fn probe(path: &Path) -> Result<()> {
    check_regular_file(path)?;
    image::ImageReader::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read image {}", path.display()))?
        .into_dimensions()
        .with_context(|| format!("{} is not a readable PNG or JPEG", path.display()))?;
    Ok(())
}

/// Decodes one image file and fits it to the model (`spec`, `fit`: see
/// [`RawImages::to_model_input`]), so that images of different sizes can share a batch:
/// 1 x C x H x W in [-1, 1].
pub fn read_fitted(path: &Path, spec: super::ImageSpec, fit: super::Fit) -> Result<tch::Tensor> {
    let (height, width, pixels) = decode(path, spec.channels as usize)?;
    let raw = RawImages {
        count: 1,
        height,
        width,
        channels: spec.channels as usize,
        pixels,
    };
    raw.to_model_input(spec, fit)
}
