//! Image grids: generator samples and galleries, written as PNG.

use crate::io::write_atomic;
use anyhow::{ensure, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Converts N x C x H x W images in [-1, 1] to one 8-bit grid image (HWC) with `columns` tiles
/// a row and a 2-pixel border; returns (width, height, channels, pixels).
pub fn grid_pixels(images: &Tensor, columns: usize) -> Result<(u32, u32, usize, Vec<u8>)> {
    let size = images.size();
    ensure!(
        size.len() == 4,
        "a grid needs N x C x H x W images, got {size:?}"
    );
    let (n, c, h, w) = (
        size[0] as usize,
        size[1] as usize,
        size[2] as usize,
        size[3] as usize,
    );
    ensure!(
        n > 0 && (c == 1 || c == 3),
        "a grid needs at least one 1- or 3-channel image"
    );
    let columns = columns.clamp(1, n);
    let rows = n.div_ceil(columns);
    let pad = 2;
    let (grid_w, grid_h) = (columns * (w + pad) + pad, rows * (h + pad) + pad);
    let tiles = pixels_u8(images);
    let mut grid = vec![255u8; grid_w * grid_h * c];
    for i in 0..n {
        let (top, left) = (
            pad + (i / columns) * (h + pad),
            pad + (i % columns) * (w + pad),
        );
        for y in 0..h {
            let src = &tiles[(i * h + y) * w * c..(i * h + y + 1) * w * c];
            let start = ((top + y) * grid_w + left) * c;
            grid[start..start + w * c].copy_from_slice(src);
        }
    }
    Ok((grid_w as u32, grid_h as u32, c, grid))
}

/// N x C x H x W images in [-1, 1] as 8-bit pixels, image after image, each HWC.
pub fn pixels_u8(images: &Tensor) -> Vec<u8> {
    let bytes = ((images
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .clamp(-1.0, 1.0)
        + 1.0)
        * 127.5)
        .round()
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    let mut pixels = vec![0u8; bytes.numel()];
    let len = pixels.len();
    bytes.copy_data(&mut pixels, len);
    pixels
}

/// Writes 8-bit HWC pixels (1 or 3 channels) as a PNG, atomically.
fn write_png(path: &Path, width: u32, height: u32, channels: usize, pixels: &[u8]) -> Result<()> {
    let colour = if channels == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    write_atomic(path, |tmp| {
        Ok(image::save_buffer_with_format(
            tmp,
            pixels,
            width,
            height,
            colour,
            image::ImageFormat::Png,
        )?)
    })
}

/// Writes N x C x H x W images in [-1, 1] as a PNG grid, atomically.
pub fn save_grid(images: &Tensor, columns: usize, path: &Path) -> Result<()> {
    let (w, h, c, pixels) = grid_pixels(images, columns)?;
    write_png(path, w, h, c, &pixels)
}

/// 3x5 pixel glyphs for the characters a score needs, one row per u8 (3 low bits, left =
/// 4). Written here because rendering a few digits under gallery tiles does not justify a
/// font-rasterising crate and a system font the user may not have.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 3, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        'e' => [0, 7, 7, 4, 7],
        ' ' => [0; 5],
        _ => return None,
    })
}

/// Width in pixels of `text` drawn at `scale` by [`draw_text`].
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * 4 * scale
}

/// An 8-bit HWC image being drawn on.
pub struct Canvas<'a> {
    /// Pixels, row by row, channels interleaved.
    pub pixels: &'a mut [u8],
    /// Width in pixels.
    pub width: usize,
    /// Channels per pixel.
    pub channels: usize,
}

impl Canvas<'_> {
    /// Draws `text` (digits, `.`, `-`, `+`, `e`, space) with its top-left at (x, y), each font
    /// pixel `scale` pixels wide, in grey level `colour`; other characters are skipped.
    pub fn draw_text(&mut self, x: usize, y: usize, text: &str, scale: usize, colour: u8) {
        let height = self.pixels.len() / (self.width * self.channels);
        for (i, c) in text.chars().enumerate() {
            let Some(rows) = glyph(c) else { continue };
            for (r, bits) in rows.iter().enumerate() {
                for col in (0..3).filter(|col| bits & (4 >> col) != 0) {
                    for (dx, dy) in (0..scale).flat_map(|dx| (0..scale).map(move |dy| (dx, dy))) {
                        let (px, py) = (x + (i * 4 + col) * scale + dx, y + r * scale + dy);
                        if px < self.width && py < height {
                            let at = (py * self.width + px) * self.channels;
                            self.pixels[at..at + self.channels].fill(colour);
                        }
                    }
                }
            }
        }
    }
}

/// Writes a gallery PNG: images (N x C x H x W in [-1, 1]) as tiles, `columns` a row, each
/// shown `zoom` times larger with its caption (a score) written under it; atomically.
pub fn save_gallery(
    images: &Tensor,
    captions: &[String],
    columns: usize,
    zoom: i64,
    path: &Path,
) -> Result<()> {
    let size = images.size();
    ensure!(
        size.len() == 4 && size[0] as usize == captions.len(),
        "one caption per image"
    );
    let (n, c, h, w) = (
        size[0] as usize,
        size[1] as usize,
        (size[2] * zoom) as usize,
        (size[3] * zoom) as usize,
    );
    let zoomed = images
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .upsample_nearest2d([h as i64, w as i64], None, None);
    let caption_h = 12;
    // Each tile grows by a white caption strip at its bottom.
    let strip = Tensor::ones(
        [n as i64, c as i64, caption_h as i64, w as i64],
        (Kind::Float, Device::Cpu),
    );
    let padded = Tensor::cat(&[zoomed, strip], 2);
    let (grid_w, grid_h, channels, mut pixels) = grid_pixels(&padded.clamp(-1.0, 1.0), columns)?;
    let columns = columns.clamp(1, n);
    for (i, caption) in captions.iter().enumerate() {
        let (top, left) = (
            2 + (i / columns) * (h + caption_h + 2),
            2 + (i % columns) * (w + 2),
        );
        let scale = if text_width(caption, 2) <= w { 2 } else { 1 };
        let x = left + w.saturating_sub(text_width(caption, scale)) / 2;
        let mut canvas = Canvas {
            pixels: &mut pixels,
            width: grid_w as usize,
            channels,
        };
        canvas.draw_text(x, top + h + 1, caption, scale, 0);
    }
    write_png(path, grid_w, grid_h, channels, &pixels)
}

/// Colour of a heat-map value in [0, 1]: black, red, yellow, white.
fn heat(v: f64) -> [u8; 3] {
    let channel = |offset: f64| ((3.0 * v - offset).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(0.0), channel(1.0), channel(2.0)]
}

/// Residual summed over channels that the heat maps draw white: one unit per channel (half of
/// the [-1, 1] range), the same for every image of every run, so that maps compare.
pub fn heat_scale(channels: i64) -> f64 {
    channels as f64
}

/// The three panels of an anomaly map as RGB images in [-1, 1], [3, 3, H, W]: the image, its
/// reconstruction, and the per-pixel residual |x - reconstruction| summed over channels as a
/// heat map from 0 (black) through red and yellow to `scale` and above (white). Images are
/// C x H x W in [-1, 1].
pub fn anomaly_map_panels(image: &Tensor, reconstruction: &Tensor, scale: f64) -> Result<Tensor> {
    let cpu = |t: &Tensor| t.to_device(Device::Cpu).to_kind(Kind::Float);
    let (image, reconstruction) = (cpu(image), cpu(reconstruction));
    let size = image.size();
    ensure!(
        size.len() == 3 && reconstruction.size() == size,
        "an anomaly map needs an image and a reconstruction of one C x H x W shape"
    );
    let residual = (&image - &reconstruction)
        .abs()
        .sum_dim_intlist(0, false, Kind::Float);
    let rgb = |t: &Tensor| {
        if t.size()[0] == 1 {
            t.repeat([3, 1, 1])
        } else {
            t.shallow_clone()
        }
    };
    let (h, w) = (size[1], size[2]);
    let values: Vec<f32> = Vec::try_from(residual.flatten(0, -1))?;
    let mut colours = vec![0f32; (3 * h * w) as usize];
    for (i, v) in values.iter().enumerate() {
        let c = heat(*v as f64 / scale);
        for (k, byte) in c.iter().enumerate() {
            colours[k * (h * w) as usize + i] = *byte as f32 / 127.5 - 1.0;
        }
    }
    let map = Tensor::from_slice(&colours).view([3, h, w]);
    Ok(Tensor::stack(&[rgb(&image), rgb(&reconstruction), map], 0))
}

/// Writes the anomaly maps of images [N, C, H, W] and their reconstructions as one PNG,
/// atomically: a strip per image (see [`anomaly_map_panels`]), `per_row` strips a row, each
/// panel `zoom` times larger.
pub fn save_anomaly_maps(
    images: &Tensor,
    reconstructions: &Tensor,
    scale: f64,
    zoom: i64,
    per_row: usize,
    path: &Path,
) -> Result<()> {
    let n = images.size()[0];
    let panels = (0..n)
        .map(|i| anomaly_map_panels(&images.get(i), &reconstructions.get(i), scale))
        .collect::<Result<Vec<_>>>()?;
    let s = images.size();
    let panels = Tensor::cat(&panels, 0).upsample_nearest2d([s[2] * zoom, s[3] * zoom], None, None);
    save_grid(&panels, 3 * per_row, path)
}

/// Writes the anomaly map of one image as a PNG strip (see [`save_anomaly_maps`]).
pub fn save_anomaly_map(
    image: &Tensor,
    reconstruction: &Tensor,
    scale: f64,
    zoom: i64,
    path: &Path,
) -> Result<()> {
    save_anomaly_maps(
        &image.unsqueeze(0),
        &reconstruction.unsqueeze(0),
        scale,
        zoom,
        1,
        path,
    )
}

/// Writes the legend of the heat maps: the colour bar from 0 to `scale` with both ends marked.
pub fn save_heat_legend(scale: f64, path: &Path) -> Result<()> {
    let (width, bar, text) = (256usize, 16usize, 12usize);
    let height = bar + text;
    let mut pixels = vec![255u8; width * height * 3];
    for x in 0..width {
        let c = heat(x as f64 / (width - 1) as f64);
        for y in 0..bar {
            pixels[(y * width + x) * 3..(y * width + x) * 3 + 3].copy_from_slice(&c);
        }
    }
    let mut canvas = Canvas {
        pixels: &mut pixels,
        width,
        channels: 3,
    };
    canvas.draw_text(1, bar + 2, "0", 2, 0);
    let label = format!("{scale}");
    canvas.draw_text(width - text_width(&label, 2) - 1, bar + 2, &label, 2, 0);
    write_png(path, width as u32, height as u32, 3, &pixels)
}
