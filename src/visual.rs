//! Image grids: generator samples and galleries, written as PNG.

use crate::checkpoint::write_atomic;
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
    let mut tiles = vec![0u8; n * h * w * c];
    let len = tiles.len();
    bytes.copy_data(&mut tiles, len);
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

/// Writes N x C x H x W images in [-1, 1] as a PNG grid, atomically.
pub fn save_grid(images: &Tensor, columns: usize, path: &Path) -> Result<()> {
    let (w, h, c, pixels) = grid_pixels(images, columns)?;
    let colour = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    write_atomic(path, |tmp| {
        Ok(image::save_buffer_with_format(
            tmp,
            &pixels,
            w,
            h,
            colour,
            image::ImageFormat::Png,
        )?)
    })
}
