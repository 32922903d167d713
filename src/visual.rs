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
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    channels: usize,
    pixels: &[u8],
) -> Result<()> {
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

/// Width in pixels of `text` drawn at `scale` by [`Canvas::draw_text`].
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * 8 * scale
}

/// Height in pixels of a line of text at scale 1, with a pixel of space under it.
const LINE: usize = 10;

/// `text` cut to at most `width` pixels at scale 1 (its end kept: the end of a file name says
/// most), with `..` where it was cut.
pub fn fit_text(text: &str, width: usize) -> String {
    let room = width / 8;
    let n = text.chars().count();
    if n <= room {
        return text.to_string();
    }
    let tail: String = text.chars().skip(n + 2 - room.max(2)).collect();
    format!("..{tail}")
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
    /// Draws `text` with its top-left at (x, y) in the 8x8 glyphs of `font8x8`, each font pixel
    /// `scale` pixels wide, in `colour` (its first value on a grey image); a character
    /// outside ASCII is drawn as `?`.
    pub fn draw_text(&mut self, x: usize, y: usize, text: &str, scale: usize, colour: [u8; 3]) {
        use font8x8::UnicodeFonts;
        let height = self.pixels.len() / (self.width * self.channels);
        for (i, c) in text.chars().enumerate() {
            let rows = font8x8::BASIC_FONTS
                .get(c)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (r, bits) in rows.iter().enumerate() {
                // Bit 0 is the leftmost pixel of a row.
                for col in (0..8).filter(|col| bits & (1 << col) != 0) {
                    for (dx, dy) in (0..scale).flat_map(|dx| (0..scale).map(move |dy| (dx, dy))) {
                        let (px, py) = (x + (i * 8 + col) * scale + dx, y + r * scale + dy);
                        if px < self.width && py < height {
                            let at = (py * self.width + px) * self.channels;
                            for k in 0..self.channels {
                                self.pixels[at + k] = colour[k.min(2)];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Copies an RGB `tile` (w x h, HWC) to (x, y); the canvas is RGB.
    fn paste(&mut self, x: usize, y: usize, tile: &[u8], w: usize) {
        for (row, line) in tile.chunks(w * 3).enumerate() {
            let start = ((y + row) * self.width + x) * 3;
            self.pixels[start..start + w * 3].copy_from_slice(line);
        }
    }

    /// Fills the rectangle (x, y, w, h) with `colour` (its first value on a grey image).
    fn fill(&mut self, (x, y, w, h): (usize, usize, usize, usize), colour: [u8; 3]) {
        for row in y..y + h {
            for px in x..x + w {
                let at = (row * self.width + px) * self.channels;
                for k in 0..self.channels {
                    self.pixels[at + k] = colour[k.min(2)];
                }
            }
        }
    }
}

/// The caption under a gallery tile: its lines (each cut to the tile's width, its end kept),
/// and whether the image is flagged as anomalous, which frames the tile in red (black on a
/// grey gallery).
#[derive(Debug, Clone, Default)]
pub struct TileCaption {
    /// Lines of text, top to bottom.
    pub lines: Vec<String>,
    /// Flagged: the tile gets a frame.
    pub flagged: bool,
}

impl From<String> for TileCaption {
    /// A caption of one line, not flagged.
    fn from(line: String) -> Self {
        Self {
            lines: vec![line],
            flagged: false,
        }
    }
}

/// Writes a gallery PNG: images (N x C x H x W in [-1, 1]) as tiles, `columns` a row, each
/// shown `zoom` times larger with its caption written under it; atomically.
pub fn save_gallery(
    images: &Tensor,
    captions: &[TileCaption],
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
    let lines = captions
        .iter()
        .map(|c| c.lines.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let caption_h = lines * LINE + 2;
    // Each tile grows by a white caption strip at its bottom.
    let strip = Tensor::ones(
        [n as i64, c as i64, caption_h as i64, w as i64],
        (Kind::Float, Device::Cpu),
    );
    let padded = Tensor::cat(&[zoomed, strip], 2);
    let (grid_w, grid_h, channels, mut pixels) = grid_pixels(&padded.clamp(-1.0, 1.0), columns)?;
    let columns = columns.clamp(1, n);
    let mut canvas = Canvas {
        pixels: &mut pixels,
        width: grid_w as usize,
        channels,
    };
    for (i, caption) in captions.iter().enumerate() {
        let (top, left) = (
            2 + (i / columns) * (h + caption_h + 2),
            2 + (i % columns) * (w + 2),
        );
        if caption.flagged {
            // In the 2-pixel gutter around the tile and its caption.
            let (x, y, fw, fh) = (left - 2, top - 2, w + 4, h + caption_h + 4);
            let red = [220, 0, 0];
            for rect in [
                (x, y, fw, 2),
                (x, y + fh - 2, fw, 2),
                (x, y, 2, fh),
                (x + fw - 2, y, 2, fh),
            ] {
                canvas.fill(rect, if channels == 1 { [0; 3] } else { red });
            }
        }
        for (k, line) in caption.lines.iter().enumerate() {
            let line = fit_text(line, w);
            let x = left + w.saturating_sub(text_width(&line, 1)) / 2;
            canvas.draw_text(x, top + h + 2 + k * LINE, &line, 1, [0; 3]);
        }
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

/// The names of an anomaly map's panels, as drawn over them.
pub const MAP_PANELS: [&str; 4] = ["image", "reconstruction", "residual", "overlay"];
/// The same, short, for panels too narrow for the names.
const MAP_PANELS_SHORT: [&str; 4] = ["image", "recon.", "resid.", "overlay"];
/// What the heat maps show, written under their colour bar.
const HEAT_UNIT: &str = "residual |x - g(z)| summed over channels, pixels in [-1, 1]";

/// What is written under an image's anomaly map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapCaption {
    /// The image's name (its id).
    pub name: String,
    /// Its anomaly score.
    pub score: f64,
    /// Its conformal p-value and whether it is flagged, when the run is calibrated.
    pub decision: Option<(f64, bool)>,
}

impl MapCaption {
    /// The caption's lines: the name; the score and p-value; the decision.
    fn lines(&self) -> Vec<(String, [u8; 3])> {
        let score = format!("score {}", crate::report::significant(self.score, 4));
        match self.decision {
            None => vec![(self.name.clone(), [0; 3]), (score, [0; 3])],
            Some((p, flagged)) => vec![
                (self.name.clone(), [0; 3]),
                (
                    format!("{score}  p {}", crate::report::significant(p, 3)),
                    [0; 3],
                ),
                match flagged {
                    true => ("ANOMALOUS".to_string(), [200, 0, 0]),
                    false => ("normal".to_string(), [0, 120, 0]),
                },
            ],
        }
    }
}

/// The four panels of an anomaly map as 8-bit RGB (HWC, H x W each): the image, its
/// reconstruction, the per-pixel residual |x - reconstruction| summed over channels as a heat
/// map from 0 (black) through red and yellow to `scale` and above (white), and that heat laid
/// over the image in grey, opaque where the residual reaches `scale`. Images are C x H x W in
/// [-1, 1].
pub fn anomaly_map_panels(
    image: &Tensor,
    reconstruction: &Tensor,
    scale: f64,
) -> Result<[Vec<u8>; 4]> {
    let cpu = |t: &Tensor| t.to_device(Device::Cpu).to_kind(Kind::Float);
    let (image, reconstruction) = (cpu(image), cpu(reconstruction));
    let size = image.size();
    ensure!(
        size.len() == 3 && reconstruction.size() == size,
        "an anomaly map needs an image and a reconstruction of one C x H x W shape"
    );
    let residual: Vec<f32> = Vec::try_from(
        (&image - &reconstruction)
            .abs()
            .sum_dim_intlist(0, false, Kind::Float)
            .flatten(0, -1),
    )?;
    let rgb = |t: &Tensor| {
        let t = if t.size()[0] == 1 {
            t.repeat([3, 1, 1])
        } else {
            t.shallow_clone()
        };
        pixels_u8(&t.unsqueeze(0))
    };
    let (image_rgb, reconstruction_rgb) = (rgb(&image), rgb(&reconstruction));
    let mut heat_map = Vec::with_capacity(residual.len() * 3);
    let mut overlay = Vec::with_capacity(residual.len() * 3);
    for (i, &v) in residual.iter().enumerate() {
        let level = (v as f64 / scale).clamp(0.0, 1.0);
        let colour = heat(level);
        let grey = image_rgb[3 * i..3 * i + 3]
            .iter()
            .map(|&c| c as f64)
            .sum::<f64>()
            / 3.0;
        heat_map.extend_from_slice(&colour);
        overlay.extend(
            colour
                .iter()
                .map(|&c| (grey * (1.0 - level) + c as f64 * level).round() as u8),
        );
    }
    Ok([image_rgb, reconstruction_rgb, heat_map, overlay])
}

/// Writes the anomaly maps of images [N, C, H, W] and their reconstructions as one PNG,
/// atomically: a strip per image, `per_row` strips a row, each of the four panels of
/// [`anomaly_map_panels`] `zoom` times larger under its name and over the image's caption,
/// and the colour bar of the residual with its unit at the bottom.
pub fn save_anomaly_maps(
    images: &Tensor,
    reconstructions: &Tensor,
    captions: &[MapCaption],
    scale: f64,
    zoom: i64,
    per_row: usize,
    path: &Path,
) -> Result<()> {
    let s = images.size();
    ensure!(
        s.len() == 4 && s[0] as usize == captions.len() && s[0] > 0,
        "anomaly maps need N x C x H x W images and one caption per image"
    );
    let up = |t: &Tensor| t.upsample_nearest2d([s[2] * zoom, s[3] * zoom], None, None);
    let (images, reconstructions) = (up(images), up(reconstructions));
    let (n, h, w) = (
        s[0] as usize,
        (s[2] * zoom) as usize,
        (s[3] * zoom) as usize,
    );
    let lines = captions.iter().map(|c| c.lines().len()).max().unwrap_or(0);
    let (pad, strip_w) = (2, 4 * (w + 2));
    let strip_h = LINE + h + 2 + lines * LINE;
    let per_row = per_row.clamp(1, n);
    let rows = n.div_ceil(per_row);
    let legend_h = 3 * LINE + 4;
    let width = (per_row * (strip_w + 2 * pad) + pad).max(2 * pad + text_width(HEAT_UNIT, 1));
    let height = rows * (strip_h + pad) + pad + legend_h;
    let mut pixels = vec![255u8; width * height * 3];
    let mut canvas = Canvas {
        pixels: &mut pixels,
        width,
        channels: 3,
    };
    for (i, caption) in captions.iter().enumerate() {
        let (left, top) = (
            pad + (i % per_row) * (strip_w + 2 * pad),
            pad + (i / per_row) * (strip_h + pad),
        );
        let panels =
            anomaly_map_panels(&images.get(i as i64), &reconstructions.get(i as i64), scale)?;
        for (k, panel) in panels.iter().enumerate() {
            let x = left + k * (w + 2);
            let name = match text_width(MAP_PANELS[k], 1) <= w {
                true => MAP_PANELS[k].to_string(),
                false => fit_text(MAP_PANELS_SHORT[k], w),
            };
            canvas.draw_text(x, top, &name, 1, [60; 3]);
            canvas.paste(x, top + LINE, panel, w);
        }
        for (j, (line, colour)) in caption.lines().into_iter().enumerate() {
            let y = top + LINE + h + 2 + j * LINE;
            canvas.draw_text(left, y, &fit_text(&line, strip_w), 1, colour);
        }
    }
    draw_heat_bar(&mut canvas, pad, height - legend_h + 2, scale);
    write_png(path, width as u32, height as u32, 3, &pixels)
}

/// The colour bar of the heat maps at (x, y): 256 pixels from 0 to `scale`, both ends
/// labelled, and its unit under it.
fn draw_heat_bar(canvas: &mut Canvas, x: usize, y: usize, scale: f64) {
    for i in 0..256 {
        canvas.fill((x + i, y, 1, LINE), heat(i as f64 / 255.0));
    }
    canvas.draw_text(x, y + LINE + 1, "0", 1, [0; 3]);
    let top = format!("{scale}+");
    canvas.draw_text(x + 256 - text_width(&top, 1), y + LINE + 1, &top, 1, [0; 3]);
    canvas.draw_text(x, y + 2 * LINE + 1, HEAT_UNIT, 1, [0; 3]);
}

/// Writes the anomaly map of one image as a PNG strip (see [`save_anomaly_maps`]).
pub fn save_anomaly_map(
    image: &Tensor,
    reconstruction: &Tensor,
    caption: &MapCaption,
    scale: f64,
    zoom: i64,
    path: &Path,
) -> Result<()> {
    save_anomaly_maps(
        &image.unsqueeze(0),
        &reconstruction.unsqueeze(0),
        std::slice::from_ref(caption),
        scale,
        zoom,
        1,
        path,
    )
}

/// Writes the legend of the heat maps alone: the colour bar from 0 to `scale` with its unit.
pub fn save_heat_legend(scale: f64, path: &Path) -> Result<()> {
    let (width, height) = (2 * 2 + text_width(HEAT_UNIT, 1), 3 * LINE + 4);
    let mut pixels = vec![255u8; width * height * 3];
    let mut canvas = Canvas {
        pixels: &mut pixels,
        width,
        channels: 3,
    };
    draw_heat_bar(&mut canvas, 2, 2, scale);
    write_png(path, width as u32, height as u32, 3, &pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flagged_tile_is_framed_and_every_caption_line_is_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let images = Tensor::zeros([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let captions = [
            TileCaption {
                lines: vec!["a".into(), "b".into(), "c".into()],
                flagged: true,
            },
            TileCaption::from("d".to_string()),
        ];
        save_gallery(&images, &captions, 2, 4, &path).unwrap();
        let gallery = image::open(&path).unwrap().to_rgb8();
        // Two 32-pixel tiles, three caption lines each (the longest caption sets the height).
        assert_eq!(
            gallery.dimensions(),
            (2 + 2 * 34, (2 + 32 + 3 * LINE + 2 + 2) as u32)
        );
        // The first tile's gutter is red, the second's is not.
        assert_eq!(gallery.get_pixel(0, 10).0, [220, 0, 0]);
        assert_ne!(gallery.get_pixel(2 + 34 + 32, 10).0, [220, 0, 0]);
        // Ink on each of the first tile's three lines.
        for line in 0..3 {
            let y0 = 2 + 32 + 2 + line * LINE;
            let ink = (2..34u32)
                .flat_map(|x| (y0..y0 + 8).map(move |y| (x, y as u32)))
                .filter(|&(x, y)| gallery.get_pixel(x, y).0[0] < 64)
                .count();
            assert!(ink > 0, "line {line}");
        }
    }
}
