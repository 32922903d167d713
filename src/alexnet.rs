//! AlexNet features for the paper's "KDE/OC-SVM on AlexNet features" rows: torchvision's
//! AlexNet architecture, weights read from a user-supplied safetensors file of its state dict
//! (`features.0.weight`, ..., `classifier.4.bias`). No weights ship with adgan and none can be
//! downloaded here: export them once with torchvision, e.g.
//!
//! ```text
//! python -c "import torchvision, safetensors.torch as st; \
//!   st.save_file(torchvision.models.alexnet(weights='DEFAULT').state_dict(), 'alexnet.safetensors')"
//! ```
//!
//! The feature of an image is, as in the paper, the representation of AlexNet's final
//! convolutional layer ([`AlexNetLayer::Conv5`]: conv5 after its ReLU and max pooling, the
//! 256 x 6 x 6 = 9216-d output of torchvision's `features`), or optionally the 4096-d output of
//! the second fully connected layer ([`AlexNetLayer::Fc7`], after its ReLU); both computed on
//! the image resized to 224 x 224 and normalised as in ImageNet training.

use crate::io::load_tensors;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Convolution layers of torchvision's AlexNet: (state-dict index, stride, padding, then max
/// pool?).
const CONVS: [(usize, i64, i64, bool); 5] = [
    (0, 4, 2, true),
    (3, 1, 2, true),
    (6, 1, 1, false),
    (8, 1, 1, false),
    (10, 1, 1, true),
];

/// The layer whose output is the feature of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlexNetLayer {
    /// The final convolutional layer (pool5, 9216-d): the paper's choice.
    #[default]
    Conv5,
    /// The second fully connected layer (fc7, 4096-d).
    Fc7,
}

impl std::str::FromStr for AlexNetLayer {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "conv5" => Ok(Self::Conv5),
            "fc7" => Ok(Self::Fc7),
            _ => bail!("unknown AlexNet layer {text:?}: use conv5 or fc7"),
        }
    }
}

/// Weight shapes the state dict must have, by key, for features of `layer`.
fn expected_shapes(layer: AlexNetLayer) -> Vec<(String, Vec<i64>)> {
    let conv = [
        (0, vec![64, 3, 11, 11]),
        (3, vec![192, 64, 5, 5]),
        (6, vec![384, 192, 3, 3]),
        (8, vec![256, 384, 3, 3]),
        (10, vec![256, 256, 3, 3]),
    ];
    let mut shapes = Vec::new();
    for (i, shape) in conv {
        shapes.push((format!("features.{i}.bias"), vec![shape[0]]));
        shapes.push((format!("features.{i}.weight"), shape));
    }
    if layer == AlexNetLayer::Fc7 {
        for (i, shape) in [(1, vec![4096, 9216]), (4, vec![4096, 4096])] {
            shapes.push((format!("classifier.{i}.bias"), vec![shape[0]]));
            shapes.push((format!("classifier.{i}.weight"), shape));
        }
    }
    shapes
}

/// AlexNet up to the feature layer, with weights from a state dict.
pub struct AlexNet {
    weights: HashMap<String, Tensor>,
    layer: AlexNetLayer,
}

impl AlexNet {
    /// Reads the weights of `path`, checking every layer up to `layer` is there with its
    /// shape.
    pub fn load(path: &Path, layer: AlexNetLayer, device: Device) -> Result<AlexNet> {
        let tensors = load_tensors(path)
            .with_context(|| format!("reading AlexNet weights from {}", path.display()))?;
        let mut weights = HashMap::new();
        for (key, shape) in expected_shapes(layer) {
            let Some(t) = tensors.get(&key) else {
                bail!(
                    "{} lacks {key}: it must hold torchvision's AlexNet state dict (see the \
                     README for how to export it)",
                    path.display()
                );
            };
            if t.size() != shape {
                bail!(
                    "{} has {key} of shape {:?}, torchvision's AlexNet needs {shape:?}",
                    path.display(),
                    t.size()
                );
            }
            weights.insert(key, t.to_kind(Kind::Float).to_device(device));
        }
        Ok(AlexNet { weights, layer })
    }

    fn w(&self, key: &str) -> &Tensor {
        &self.weights[key]
    }

    /// The layer whose output is the feature.
    pub fn layer(&self) -> AlexNetLayer {
        self.layer
    }

    /// Features of images N x C x H x W in [-1, 1] (grey is repeated to RGB): N x 9216 for
    /// conv5, N x 4096 for fc7; 64 images at a time so memory stays bounded.
    pub fn features(&self, images: &Tensor) -> Tensor {
        let parts: Vec<Tensor> = images.split(64, 0).iter().map(|b| self.batch(b)).collect();
        Tensor::cat(&parts, 0)
    }

    fn batch(&self, images: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let device = self.w("features.0.weight").device();
            let mut x = images.to_device(device).to_kind(Kind::Float);
            if x.size()[1] == 1 {
                x = x.repeat([1, 3, 1, 1]);
            }
            let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
            let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
            x = ((x + 1.0) * 0.5).upsample_bilinear2d([224, 224], false, None, None);
            x = (x - mean.to_device(device)) / std.to_device(device);
            for (i, stride, padding, pool) in CONVS {
                x = x
                    .conv2d(
                        self.w(&format!("features.{i}.weight")),
                        Some(self.w(&format!("features.{i}.bias"))),
                        [stride, stride],
                        [padding, padding],
                        [1, 1],
                        1,
                    )
                    .relu();
                if pool {
                    x = x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
                }
            }
            x = x.adaptive_avg_pool2d([6, 6]).flatten(1, -1);
            if self.layer == AlexNetLayer::Conv5 {
                return x;
            }
            for i in [1, 4] {
                x = x
                    .linear(
                        self.w(&format!("classifier.{i}.weight")),
                        Some(self.w(&format!("classifier.{i}.bias"))),
                    )
                    .relu();
            }
            x
        })
    }
}
