//! Readers: round trips on files the tests write, and clear errors on bad input.

mod common;

use adgan::data::{
    cifar, demo, folder, idx, one_vs_all, DataSource, Fit, ImageSpec, OnBadFile, RawImages, Split,
};
use std::io::Write;
use std::path::Path;

fn pattern(count: usize, h: usize, w: usize, c: usize) -> RawImages {
    let pixels = (0..count * h * w * c)
        .map(|i| ((i * 7 + i / 13) % 256) as u8)
        .collect();
    RawImages {
        count,
        height: h,
        width: w,
        channels: c,
        pixels,
    }
}

#[test]
fn idx_round_trip_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let images = pattern(5, 28, 28, 1);
    let labels = vec![3u8, 1, 4, 1, 5];
    for gzip in [false, true] {
        let ext = if gzip { ".gz" } else { "" };
        let (ip, lp) = (
            dir.path().join(format!("i{ext}")),
            dir.path().join(format!("l{ext}")),
        );
        idx::write(&ip, &[5, 28, 28], &images.pixels, gzip).unwrap();
        idx::write(&lp, &[5], &labels, gzip).unwrap();
        assert_eq!(idx::read_images(&ip).unwrap(), images);
        assert_eq!(idx::read_labels(&lp).unwrap(), labels);
    }
}

#[test]
fn mnist_folder_reads_both_splits() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (pattern(6, 28, 28, 1), pattern(3, 28, 28, 1));
    idx::write(
        &dir.path().join("train-images-idx3-ubyte.gz"),
        &[6, 28, 28],
        &train.pixels,
        true,
    )
    .unwrap();
    idx::write(
        &dir.path().join("train-labels-idx1-ubyte.gz"),
        &[6],
        &[0, 1, 2, 0, 1, 2],
        true,
    )
    .unwrap();
    idx::write(
        &dir.path().join("t10k-images-idx3-ubyte"),
        &[3, 28, 28],
        &test.pixels,
        false,
    )
    .unwrap();
    idx::write(
        &dir.path().join("t10k-labels-idx1-ubyte"),
        &[3],
        &[2, 2, 1],
        false,
    )
    .unwrap();
    let (read_train, labels) = idx::read_mnist_dir(dir.path(), Split::Train).unwrap();
    assert_eq!((read_train, labels), (train, vec![0, 1, 2, 0, 1, 2]));
    let (read_test, labels) = idx::read_mnist_dir(dir.path(), Split::Test).unwrap();
    assert_eq!((read_test, labels), (test, vec![2, 2, 1]));
}

#[test]
fn idx_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let images = pattern(4, 28, 28, 1);
    let good = dir.path().join("images.idx");
    idx::write(&good, &[4, 28, 28], &images.pixels, false).unwrap();

    let truncated = dir.path().join("truncated.idx");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let msg = common::error_text(idx::read_images(&truncated));
    assert!(
        msg.contains("truncated.idx") && msg.contains("truncated"),
        "{msg}"
    );

    let gz = dir.path().join("cut.gz");
    idx::write(&gz, &[4, 28, 28], &images.pixels, true).unwrap();
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let msg = common::error_text(idx::read_images(&gz));
    assert!(msg.contains("cut.gz") && msg.contains("gzip"), "{msg}");

    let labels = dir.path().join("labels.idx");
    idx::write(&labels, &[4], &[1, 2, 3, 4], false).unwrap();
    let msg = common::error_text(idx::read_images(&labels));
    assert!(msg.contains("labels.idx") && msg.contains("magic"), "{msg}");

    let missing = dir.path().join("nope.idx");
    let msg = common::error_text(idx::read_images(&missing));
    assert!(msg.contains("nope.idx"), "{msg}");
    let msg = common::error_text(idx::read_mnist_dir(dir.path(), Split::Train));
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
}

fn cifar_fixture(dir: &Path) -> Vec<(RawImages, Vec<u8>)> {
    let mut batches = Vec::new();
    for (i, name) in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ]
    .iter()
    .enumerate()
    {
        let images = pattern(2 + i, 32, 32, 3);
        let labels: Vec<u8> = (0..images.count).map(|j| ((i + j) % 10) as u8).collect();
        cifar::write_batch(&dir.join(name), &images, &labels).unwrap();
        batches.push((images, labels));
    }
    batches
}

fn concat(batches: &[(RawImages, Vec<u8>)]) -> (RawImages, Vec<u8>) {
    let mut all = RawImages {
        count: 0,
        height: 32,
        width: 32,
        channels: 3,
        pixels: Vec::new(),
    };
    let mut labels = Vec::new();
    for (images, l) in batches {
        all.count += images.count;
        all.pixels.extend_from_slice(&images.pixels);
        labels.extend_from_slice(l);
    }
    (all, labels)
}

#[test]
fn cifar_round_trip_folder_and_tar_gz() {
    let dir = tempfile::tempdir().unwrap();
    let batches_dir = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&batches_dir).unwrap();
    let batches = cifar_fixture(&batches_dir);
    let expected_train = concat(&batches[..5]);
    let expected_test = concat(&batches[5..]);
    // The folder itself, and its parent (which holds cifar-10-batches-bin/).
    for path in [batches_dir.as_path(), dir.path()] {
        assert_eq!(cifar::read(path, Split::Train).unwrap(), expected_train);
        assert_eq!(cifar::read(path, Split::Test).unwrap(), expected_test);
    }
    let archive = dir.path().join("cifar-10-binary.tar.gz");
    let file = std::fs::File::create(&archive).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    tar.append_dir_all("cifar-10-batches-bin", &batches_dir)
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    assert_eq!(cifar::read(&archive, Split::Train).unwrap(), expected_train);
    assert_eq!(cifar::read(&archive, Split::Test).unwrap(), expected_test);

    let bytes = std::fs::read(&archive).unwrap();
    let cut = dir.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = common::error_text(cifar::read(&cut, Split::Train));
    assert!(msg.contains("cut.tar.gz"), "{msg}");
}

#[test]
fn cifar_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    cifar_fixture(dir.path());
    let test = dir.path().join("test_batch.bin");
    let bytes = std::fs::read(&test).unwrap();
    std::fs::write(&test, &bytes[..bytes.len() - 5]).unwrap();
    let msg = common::error_text(cifar::read(dir.path(), Split::Test));
    assert!(
        msg.contains("test_batch.bin") && msg.contains("truncated"),
        "{msg}"
    );

    let mut bad_label = bytes.clone();
    bad_label[0] = 42;
    std::fs::write(&test, &bad_label).unwrap();
    let msg = common::error_text(cifar::read(dir.path(), Split::Test));
    assert!(
        msg.contains("test_batch.bin") && msg.contains("label 42"),
        "{msg}"
    );

    std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
    let msg = common::error_text(cifar::read(dir.path(), Split::Train));
    assert!(msg.contains("data_batch_3.bin"), "{msg}");
    let msg = common::error_text(cifar::read(&dir.path().join("missing"), Split::Train));
    assert!(msg.contains("missing"), "{msg}");
}

fn save_png(path: &Path, w: u32, h: u32, seed: u8) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h * 3)
        .map(|i| (i as u8).wrapping_mul(seed))
        .collect();
    image::save_buffer(path, &pixels, w, h, image::ExtendedColorType::Rgb8).unwrap();
    pixels
}

#[test]
fn image_folder_round_trip_labelled_and_flat() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for (class, name) in ["cat", "dog"].iter().enumerate() {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        for i in 0..3 {
            expected.extend(save_png(
                &dir.path().join(name).join(format!("{i}.png")),
                8,
                6,
                (class * 3 + i + 1) as u8,
            ));
        }
    }
    let read = folder::read(dir.path(), 3).unwrap();
    assert_eq!(read.class_names, vec!["cat", "dog"]);
    assert_eq!(read.labels, Some(vec![0, 0, 0, 1, 1, 1]));
    assert_eq!(
        (read.images.count, read.images.height, read.images.width),
        (6, 6, 8)
    );
    assert_eq!(read.images.pixels, expected, "PNG pixels come back exactly");
    assert!(read.paths[4].ends_with("dog/1.png"));

    let flat = folder::read(&dir.path().join("dog"), 3).unwrap();
    assert_eq!((flat.labels, flat.images.count), (None, 3));
    let grey = folder::read(&dir.path().join("dog"), 1).unwrap();
    assert_eq!(grey.images.channels, 1);
}

#[test]
fn image_folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    save_png(&dir.path().join("a.png"), 8, 8, 1);
    save_png(&dir.path().join("b.png"), 8, 9, 2);
    let msg = common::error_text(folder::read(dir.path(), 3));
    assert!(
        msg.contains("b.png") && msg.contains("8x9") && msg.contains("8x8"),
        "{msg}"
    );

    std::fs::remove_file(dir.path().join("b.png")).unwrap();
    let bytes = std::fs::read(dir.path().join("a.png")).unwrap();
    std::fs::write(dir.path().join("c.png"), &bytes[..bytes.len() / 2]).unwrap();
    let msg = common::error_text(folder::read(dir.path(), 3));
    assert!(msg.contains("c.png"), "{msg}");
    std::fs::write(dir.path().join("c.png"), b"not an image at all").unwrap();
    let msg = common::error_text(folder::read(dir.path(), 3));
    assert!(msg.contains("c.png"), "{msg}");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let msg = common::error_text(folder::read(&empty, 3));
    assert!(
        msg.contains("empty") && msg.contains("no PNG or JPEG"),
        "{msg}"
    );
    let msg = common::error_text(folder::read(&dir.path().join("absent"), 3));
    assert!(
        msg.contains("absent") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn model_input_pads_mnist_and_scales_to_unit_range() {
    let mut raw = pattern(2, 28, 28, 1);
    raw.pixels[0] = 0;
    raw.pixels[1] = 255;
    let x = raw
        .to_model_input(
            ImageSpec {
                size: 32,
                channels: 1,
            },
            Fit::Pad,
        )
        .unwrap();
    assert_eq!(x.size(), vec![2, 1, 32, 32]);
    assert_eq!(x.double_value(&[0, 0, 2, 2]), -1.0);
    assert_eq!(x.double_value(&[0, 0, 2, 3]), 1.0);
    assert_eq!(
        x.double_value(&[0, 0, 0, 0]),
        -1.0,
        "the border is background"
    );
    let expected = raw.pixels[5 * 28 + 7] as f64 / 127.5 - 1.0;
    assert!((x.double_value(&[0, 0, 7, 9]) - expected).abs() < 1e-6);

    let rgb = raw
        .to_model_input(
            ImageSpec {
                size: 32,
                channels: 3,
            },
            Fit::Resize,
        )
        .unwrap();
    assert_eq!(rgb.size(), vec![2, 3, 32, 32]);
    assert!(rgb.min().double_value(&[]) >= -1.0 && rgb.max().double_value(&[]) <= 1.0);
    let big = pattern(1, 64, 64, 3)
        .to_model_input(
            ImageSpec {
                size: 32,
                channels: 1,
            },
            Fit::Pad,
        )
        .unwrap();
    assert_eq!(big.size(), vec![1, 1, 32, 32]);
}

#[test]
fn demo_data_is_deterministic_and_classes_differ() {
    let (a, la) = demo::generate(Split::Test, 3);
    let (b, lb) = demo::generate(Split::Test, 3);
    assert_eq!((&a, &la), (&b, &lb));
    let (c, _) = demo::generate(Split::Test, 4);
    assert_ne!(a.pixels, c.pixels);
    let (train, _) = demo::generate(Split::Train, 3);
    assert_ne!(
        train.pixels[..a.pixels.len()],
        a.pixels[..],
        "splits are different draws"
    );
    // Shape descriptor: foreground area over squared largest radius is pi for a disc, 2 for a
    // square, and far lower for a cross; stripes cover far more of the image than a disc.
    let descriptor = |class: u8| {
        let (mut compactness, mut area_sum, mut n) = (0.0, 0.0, 0.0);
        for (i, _) in la.iter().enumerate().filter(|(_, &l)| l == class) {
            let image = &a.pixels[i * 32 * 32 * 3..(i + 1) * 32 * 32 * 3];
            let fg: Vec<(f64, f64)> = (0..32 * 32)
                .filter(|p| image[p * 3] > 128)
                .map(|p| ((p % 32) as f64 + 0.5, (p / 32) as f64 + 0.5))
                .collect();
            let area = fg.len() as f64;
            let (cx, cy) = (
                fg.iter().map(|p| p.0).sum::<f64>() / area,
                fg.iter().map(|p| p.1).sum::<f64>() / area,
            );
            let r2 = fg
                .iter()
                .map(|p| (p.0 - cx).powi(2) + (p.1 - cy).powi(2))
                .fold(0.0, f64::max);
            compactness += area / r2;
            area_sum += area;
            n += 1.0;
        }
        (compactness / n, area_sum / n)
    };
    let (disc, square, cross, stripes) =
        (descriptor(0), descriptor(1), descriptor(2), descriptor(3));
    assert!(
        disc.0 > 2.6 && square.0 < 2.4 && cross.0 < 1.9,
        "{disc:?} {square:?} {cross:?}"
    );
    assert!(stripes.1 > 2.0 * disc.1, "{stripes:?} {disc:?}");
}

#[test]
fn one_vs_all_draws_a_seeded_test_set() {
    let source = DataSource::Demo { seed: 1 };
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    let train = source.load(Split::Train, spec, Fit::Pad).unwrap();
    let test = source.load(Split::Test, spec, Fit::Pad).unwrap();
    let task = one_vs_all(&train, &test, 2, 500, 7).unwrap();
    assert_eq!(task.train.len(), demo::TRAIN_PER_CLASS);
    assert!(task.train.labels.as_ref().unwrap().iter().all(|&l| l == 2));
    assert_eq!(task.test.len(), 500);
    let labels = task.test.labels.as_ref().unwrap();
    for (label, class) in labels.iter().zip(&task.test_classes) {
        assert_eq!(*label, i64::from(*class != 2));
    }
    let mut ids = task.test.ids.clone();
    ids.dedup();
    assert_eq!(ids.len(), 500, "drawn without replacement");
    let again = one_vs_all(&train, &test, 2, 500, 7).unwrap();
    assert_eq!(again.test.ids, task.test.ids);
    let other = one_vs_all(&train, &test, 2, 500, 8).unwrap();
    assert_ne!(other.test.ids, task.test.ids);
    // Asking for more test images than there are draws all of them.
    let all = one_vs_all(&train, &test, 2, test.len() + 1, 7).unwrap();
    assert_eq!(all.test.ids, test.ids);
}

#[test]
fn real_mnist_counts_and_mean() {
    let Some(dir) = common::shared_data("mnist") else {
        return;
    };
    let (train, labels) = idx::read_mnist_dir(&dir, Split::Train).unwrap();
    assert_eq!((train.count, labels.len()), (60000, 60000));
    let mean = train.pixels.iter().map(|&p| p as f64).sum::<f64>() / train.pixels.len() as f64;
    assert!((mean - 33.318).abs() < 0.001, "train pixel mean {mean}");
    let (test, labels) = idx::read_mnist_dir(&dir, Split::Test).unwrap();
    assert_eq!((test.count, labels.len()), (10000, 10000));
    let zeros = labels.iter().filter(|&&l| l == 0).count();
    assert_eq!(zeros, 980);
}

#[test]
fn a_streamed_folder_scores_like_one_loaded_whole() {
    use adgan::data::{load_folder, FolderStream};
    use adgan::score::{score_all, score_source, Detector};
    /// Scores an image by its mean pixel and records the largest batch it was given.
    struct MeanPixel {
        largest: i64,
    }
    impl Detector for MeanPixel {
        fn name(&self) -> &str {
            "mean"
        }
        fn score_batch(&mut self, images: &tch::Tensor) -> anyhow::Result<Vec<f64>> {
            self.largest = self.largest.max(images.size()[0]);
            let means = images.flatten(1, -1).mean_dim(1, false, tch::Kind::Double);
            Ok(Vec::<f64>::try_from(&means)?)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for i in 0..37 {
        save_png(&dir.path().join(format!("{i:03}.png")), 12, 10, i as u8 + 1);
    }
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    let whole = load_folder(dir.path(), spec, Fit::Pad, OnBadFile::Fail).unwrap();
    let mut detector = MeanPixel { largest: 0 };
    let expected = score_all(
        &mut detector,
        &whole.images,
        37,
        tch::Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    let mut stream = FolderStream::open(dir.path(), spec, Fit::Pad, OnBadFile::Fail).unwrap();
    assert_eq!(stream.len(), 37);
    assert_eq!(stream.ids(), whole.ids);
    let mut detector = MeanPixel { largest: 0 };
    let streamed = score_source(
        &mut detector,
        &mut stream,
        8,
        tch::Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(streamed, expected);
    assert_eq!(
        detector.largest, 8,
        "never more than one batch of images at a time"
    );

    // A file whose body is corrupt passes the header check; met while streaming, it is an
    // error naming it with OnBadFile::Fail, and is left out and listed with OnBadFile::Skip.
    let good = std::fs::read(dir.path().join("020.png")).unwrap();
    std::fs::write(dir.path().join("020.png"), &good[..good.len() - 20]).unwrap();
    let mut stream = FolderStream::open(dir.path(), spec, Fit::Pad, OnBadFile::Fail).unwrap();
    let text = common::error_text(score_source(
        &mut MeanPixel { largest: 0 },
        &mut stream,
        8,
        tch::Device::Cpu,
        &mut |_, _| {},
    ));
    assert!(text.contains("020.png"), "{text}");
    let mut stream = FolderStream::open(dir.path(), spec, Fit::Pad, OnBadFile::Skip).unwrap();
    let scores = score_source(
        &mut MeanPixel { largest: 0 },
        &mut stream,
        8,
        tch::Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    let skipped = stream.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, 20);
    assert!(skipped[0].1.id.ends_with("020.png"));
    for (i, (a, b)) in scores.iter().zip(&expected).enumerate() {
        assert!(i == 20 || a == b, "the other images score as before");
    }
    // A zero-byte file, a text file named .jpg and a macOS ._ file are found when the folder is
    // opened, before any work: refused with OnBadFile::Fail, listed with OnBadFile::Skip.
    std::fs::write(dir.path().join("020.png"), good).unwrap();
    std::fs::write(dir.path().join("empty.png"), b"").unwrap();
    std::fs::write(dir.path().join("notes.jpg"), b"just some text").unwrap();
    std::fs::write(
        dir.path().join("._001.png"),
        b"\x00\x05\x16\x07 AppleDouble",
    )
    .unwrap();
    let text = common::error_text(FolderStream::open(
        dir.path(),
        spec,
        Fit::Pad,
        OnBadFile::Fail,
    ));
    assert!(text.contains("._001.png"), "{text}");
    let stream = FolderStream::open(dir.path(), spec, Fit::Pad, OnBadFile::Skip).unwrap();
    let ids: Vec<String> = stream.skipped().into_iter().map(|(_, s)| s.id).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let loaded = load_folder(dir.path(), spec, Fit::Pad, OnBadFile::Skip).unwrap();
    assert_eq!((loaded.len(), loaded.skipped.len()), (37, 3));
    assert!(load_folder(dir.path(), spec, Fit::Pad, OnBadFile::Fail).is_err());
}

/// Images of different sizes share a model input: each is fitted on its own (padded when
/// smaller with `Fit::Pad`, resized otherwise).
#[test]
fn a_folder_of_mixed_sizes_is_fitted_image_by_image() {
    use adgan::data::load_folder;
    let dir = tempfile::tempdir().unwrap();
    save_png(&dir.path().join("a.png"), 28, 28, 10);
    save_png(&dir.path().join("b.png"), 40, 30, 20);
    save_png(&dir.path().join("c.png"), 64, 64, 30);
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    for fit in [Fit::Pad, Fit::Resize] {
        let data = load_folder(dir.path(), spec, fit, OnBadFile::Fail).unwrap();
        assert_eq!(data.images.size(), vec![3, 3, 32, 32], "{fit:?}");
        assert!(data.skipped.is_empty());
    }
    let padded = load_folder(dir.path(), spec, Fit::Pad, OnBadFile::Fail).unwrap();
    let corner = padded.images.double_value(&[0, 0, 0, 0]);
    assert_eq!(corner, -1.0, "the 28x28 image is centred on a black border");
}

#[test]
fn special_files_named_as_images_are_listed_as_skipped_with_the_reason() {
    use adgan::data::{load_folder, FolderStream};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    save_png(&d.join("a.png"), 8, 8, 1);
    save_png(&d.join("b.png"), 8, 8, 2);
    std::os::unix::fs::symlink(d.join("gone.png"), d.join("dangling.png")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.png")).unwrap();
    let fifo = std::ffi::CString::new(d.join("pipe.png").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path this test owns; a FIFO that is opened would block the test.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let spec = ImageSpec {
        size: 8,
        channels: 3,
    };
    let stream = FolderStream::open(d, spec, Fit::Pad, OnBadFile::Skip).unwrap();
    let skipped: Vec<(String, String)> = stream
        .skipped()
        .into_iter()
        .map(|(_, s)| (s.id, s.reason))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    let reason = |name: &str| {
        skipped
            .iter()
            .find(|(id, _)| id.ends_with(name))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{name} is not listed: {skipped:?}"))
    };
    assert!(reason("dangling.png").contains("dangling link"));
    assert!(reason("pipe.png").contains("not a regular file"));
    assert!(reason("zero.png").contains("not a regular file"));
    let loaded = load_folder(d, spec, Fit::Pad, OnBadFile::Skip).unwrap();
    assert_eq!((loaded.len(), loaded.skipped.len()), (2, 3));
    let strict = common::error_text(load_folder(d, spec, Fit::Pad, OnBadFile::Fail));
    assert!(strict.contains("dangling.png"), "{strict}");
}
