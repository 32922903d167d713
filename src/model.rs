//! The DCGAN generator and critic (Radford et al. 2016) used by the paper, for 32x32 and 64x64
//! images with 1 or 3 channels.
//!
//! Each upsampling stage of the generator doubles the side: ConvTranspose(4, stride 2) ->
//! BatchNorm -> ReLU, from a 4x4 map of `width * 2^(stages-1)` channels down to `width`, then
//! tanh. The critic mirrors it with Conv(4, stride 2) -> LeakyReLU(0.2) and ends in a linear
//! score (no sigmoid: a Wasserstein critic). It has no BatchNorm, so that its score of an image
//! does not depend on the rest of the batch (needed for the gradient penalty and for scoring).

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Largest base width accepted (16 times DCGAN's): a wider network would not fit in memory.
pub const MAX_WIDTH: i64 = 1024;
/// Largest latent dimension accepted (64 times the paper's).
pub const MAX_LATENT_DIM: i64 = 16384;

/// Architecture of a generator/critic pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Side of the (square) images: 32 or 64.
    pub image_size: i64,
    /// Image channels: 1 or 3.
    pub channels: i64,
    /// Latent dimension d' (the paper uses 256).
    pub latent_dim: i64,
    /// Base width: channels of the last generator and first critic stage (DCGAN: 64).
    pub width: i64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            image_size: 32,
            channels: 3,
            latent_dim: 256,
            width: 64,
        }
    }
}

impl ModelConfig {
    /// Checks that the configuration describes a model that can be built.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            matches!(self.image_size, 32 | 64),
            "image size {} is not supported: use 32 or 64",
            self.image_size
        );
        ensure!(
            matches!(self.channels, 1 | 3),
            "channels must be 1 or 3, not {}",
            self.channels
        );
        ensure!(
            (1..=MAX_WIDTH).contains(&self.width),
            "width {} is out of range: use 1 to {MAX_WIDTH} (DCGAN's is 64)",
            self.width
        );
        ensure!(
            (1..=MAX_LATENT_DIM).contains(&self.latent_dim),
            "latent dimension {} is out of range: use 1 to {MAX_LATENT_DIM} (the paper's is 256)",
            self.latent_dim
        );
        Ok(())
    }

    /// Number of generator parameters (weights of the transposed convolutions and BatchNorm
    /// scales and shifts), computed without building the network.
    pub fn generator_parameters(&self) -> i64 {
        let stages = self.stages();
        let top = self.width << (stages - 1);
        let mut widths = vec![self.latent_dim];
        widths.extend((0..stages).map(|i| top >> i));
        widths.push(self.channels);
        let convs: i64 = widths.windows(2).map(|p| p[0] * p[1] * 16).sum();
        let norms: i64 = widths[1..widths.len() - 1].iter().map(|c| 2 * c).sum();
        convs + norms
    }

    /// The size and channels of the images the model takes.
    pub fn image_spec(&self) -> crate::data::ImageSpec {
        crate::data::ImageSpec {
            size: self.image_size,
            channels: self.channels,
        }
    }

    /// Number of stride-2 stages between 4x4 and the image size (3 for 32, 4 for 64).
    pub fn stages(&self) -> i64 {
        (self.image_size / 4).trailing_zeros() as i64
    }
}

/// How the networks' weights are initialised before training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// DCGAN's (Radford et al. 2016): convolution weights N(0, 0.02^2), BatchNorm scales
    /// N(1, 0.02^2), biases 0.
    #[default]
    Dcgan,
    /// PyTorch's defaults for its layers: convolution weights and biases U(-b, b) with
    /// b = 1 / sqrt(fan_in) (kaiming_uniform with a = sqrt(5)), BatchNorm scales 1 and shifts 0.
    /// fan_in counts dimension 1 of the weight times the kernel area, as PyTorch does, which
    /// for a transposed convolution is its output channels.
    Uniform,
}

impl std::str::FromStr for Init {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "dcgan" => Ok(Init::Dcgan),
            "uniform" => Ok(Init::Uniform),
            _ => anyhow::bail!("unknown initialisation {text:?}: use dcgan or uniform"),
        }
    }
}

/// Initialises the trainable variables of `vs` with `init`, drawn from `rng` so that it does
/// not depend on libtorch's process-wide generator. Variables are visited in name order, so
/// the same seed gives the same network.
pub fn initialise(vs: &nn::VarStore, init: Init, rng: &mut rand_chacha::ChaCha8Rng) {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    // The weight of a layer comes before its bias in name order only for some names, so the
    // fan-in of every layer is read off its weight first.
    let fan_in = |layer: &str| {
        vars.iter()
            .find(|(n, _)| n.strip_suffix(".weight") == Some(layer))
            .map(|(_, w)| w.size().iter().skip(1).product::<i64>())
            .unwrap_or(1)
    };
    let fans: Vec<i64> = vars
        .iter()
        .map(|(name, _)| fan_in(name.rsplit_once('.').map_or("", |(l, _)| l)))
        .collect();
    for ((name, mut var), fan) in vars.into_iter().zip(fans) {
        let norm = name.starts_with("norm");
        let bias = name.ends_with(".bias");
        let shape = var.size();
        let device = var.device();
        let value = match init {
            Init::Dcgan if bias => var.zeros_like(),
            Init::Dcgan => {
                crate::rng::normal(rng, &shape, if norm { 1.0 } else { 0.0 }, 0.02, device)
            }
            Init::Uniform if norm && bias => var.zeros_like(),
            Init::Uniform if norm => var.ones_like(),
            Init::Uniform => {
                let bound = 1.0 / (fan as f64).sqrt();
                crate::rng::uniform(rng, &shape, device) * (2.0 * bound) - bound
            }
        };
        tch::no_grad(|| var.copy_(&value));
    }
}

/// The DCGAN initialisation ([`Init::Dcgan`]).
pub fn dcgan_init(vs: &nn::VarStore, rng: &mut rand_chacha::ChaCha8Rng) {
    initialise(vs, Init::Dcgan, rng)
}

/// DCGAN generator g_theta: latent z in R^{d'} -> image in [-1, 1].
#[derive(Debug)]
pub struct Generator {
    /// Transposed convolutions, first (1x1 -> 4x4) to last (-> image).
    pub convs: Vec<nn::ConvTranspose2D>,
    /// BatchNorm after every transposed convolution but the last.
    pub norms: Vec<nn::BatchNorm>,
    config: ModelConfig,
}

impl Generator {
    /// Builds the generator's variables under `vs` (initialise them with [`initialise`]).
    pub fn new(vs: &nn::Path, config: ModelConfig) -> Result<Self> {
        config.validate()?;
        let stages = config.stages();
        let top = config.width << (stages - 1);
        let mut widths = vec![config.latent_dim];
        widths.extend((0..stages).map(|i| top >> i));
        widths.push(config.channels);
        let (mut convs, mut norms) = (Vec::new(), Vec::new());
        for (i, pair) in widths.windows(2).enumerate() {
            let (stride, padding) = Generator::geometry(i);
            let conv_config = nn::ConvTransposeConfig {
                stride,
                padding,
                bias: false,
                ..Default::default()
            };
            convs.push(nn::conv_transpose2d(
                vs / format!("conv{i}"),
                pair[0],
                pair[1],
                4,
                conv_config,
            ));
            if i + 2 < widths.len() {
                let bn_config = nn::BatchNormConfig {
                    ws_init: nn::Init::Randn {
                        mean: 1.0,
                        stdev: 0.02,
                    },
                    ..Default::default()
                };
                norms.push(nn::batch_norm2d(
                    vs / format!("norm{i}"),
                    pair[1],
                    bn_config,
                ));
            }
        }
        Ok(Self {
            convs,
            norms,
            config,
        })
    }

    /// Stride and padding of transposed convolution `layer` (1x1 -> 4x4 first, then doubling).
    pub fn geometry(layer: usize) -> (i64, i64) {
        if layer == 0 {
            (1, 0)
        } else {
            (2, 1)
        }
    }

    /// The architecture.
    pub fn config(&self) -> ModelConfig {
        self.config
    }

    /// g_theta(z) for latents `z` of shape B x d'. `train` selects batch statistics in
    /// BatchNorm (and updates the running ones); otherwise the running statistics are used.
    pub fn forward(&self, z: &Tensor, train: bool) -> Tensor {
        let d = self.config.latent_dim;
        let mut x = Tensor::new();
        for (i, conv) in self.convs.iter().enumerate() {
            x = if i == 0 {
                // 1x1 -> 4x4 with stride 1 and no padding is a plain matrix product, which
                // libtorch runs forward and backward faster than its transposed convolution
                // (BENCHMARKS.md, "Where a step spends its time").
                let out_channels = conv.ws.size()[1];
                channels_last(
                    &z.view([-1, d])
                        .matmul(&conv.ws.view([d, out_channels * 16]))
                        .view([-1, out_channels, 4, 4]),
                )
            } else {
                x.apply(conv)
            };
            x = match self.norms.get(i) {
                Some(norm) => x.apply_t(norm, train).relu(),
                None => x.tanh(),
            };
        }
        x
    }
}

/// Wasserstein critic f_w: image -> real score (higher = more like the training data).
#[derive(Debug)]
pub struct Critic {
    /// Convolutions, image -> ... -> 4x4 -> 1x1 score.
    pub convs: Vec<nn::Conv2D>,
}

/// `x` [N, C, H, W] laid out channels-last (strides of NHWC), the layout oneDNN's CPU
/// convolutions work in natively: with the default NCHW layout libtorch reorders every
/// activation and gradient to oneDNN's blocked layout and back around each convolution (the
/// speed-up is in BENCHMARKS.md). Later ops keep the layout. tch
/// 0.24 has no memory-format argument; the permutations make it.
pub fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// LeakyReLU with slope 0.2, written as lerp(x, relu(x), 0.8) = 0.2 x + 0.8 relu(x): tch exposes
/// libtorch's leaky_relu only with its default slope 0.01. It is faster than PReLU with a
/// constant slope, which computes a full-size gradient for its slope even when the slope needs
/// none, and than `max(x, 0.2 x)` (timings in BENCHMARKS.md).
fn leaky_relu_02(x: &Tensor) -> Tensor {
    x.lerp(&x.relu(), 0.8)
}

impl Critic {
    /// Builds the critic's variables under `vs` (initialise them with [`initialise`]).
    pub fn new(vs: &nn::Path, config: ModelConfig) -> Result<Self> {
        config.validate()?;
        let stages = config.stages();
        let mut widths = vec![config.channels];
        widths.extend((0..stages).map(|i| config.width << i));
        widths.push(1);
        let convs = widths
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                let last = i + 2 == widths.len();
                let conv_config = nn::ConvConfig {
                    stride: if last { 1 } else { 2 },
                    padding: if last { 0 } else { 1 },
                    ..Default::default()
                };
                nn::conv2d(vs / format!("conv{i}"), pair[0], pair[1], 4, conv_config)
            })
            .collect();
        Ok(Self { convs })
    }

    /// Critic values f_w(x), one per image (shape B).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.convs.last().expect("the critic has layers");
        self.features(x).apply(last).view([-1])
    }

    /// Activations of the last hidden layer (before the final 4x4 convolution), N x C x 4 x 4:
    /// the intermediate representation AnoGAN's feature-matching loss compares.
    pub fn features(&self, x: &Tensor) -> Tensor {
        let hidden = &self.convs[..self.convs.len() - 1];
        hidden
            .iter()
            .fold(channels_last(x), |h, conv| leaky_relu_02(&h.apply(conv)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The first layer is computed as a matrix product: it must equal the transposed
    /// convolution it replaces, in training and in evaluation mode.
    #[test]
    fn first_layer_product_equals_the_transposed_convolution() {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig {
            latent_dim: 8,
            width: 4,
            ..ModelConfig::default()
        };
        let generator = Generator::new(&vs.root(), config).unwrap();
        dcgan_init(&vs, &mut crate::rng::seeded(5));
        let z = crate::rng::normal(&mut crate::rng::seeded(6), &[3, 8], 0.0, 1.0, Device::Cpu);
        for train in [false, true] {
            let mut x = z.view([3, 8, 1, 1]);
            for (i, conv) in generator.convs.iter().enumerate() {
                x = x.apply(conv);
                x = match generator.norms.get(i) {
                    Some(norm) => x.apply_t(norm, train).relu(),
                    None => x.tanh(),
                };
            }
            let ours = generator.forward(&z, train);
            assert_eq!(ours.size(), vec![3, 3, 32, 32]);
            let gap = (ours - &x).abs().max().double_value(&[]);
            assert!(gap < 1e-5, "train {train}: largest difference {gap}");
            assert_eq!(x.kind(), Kind::Float);
        }
    }

    /// PyTorch's default initialisation: every weight and bias within 1 / sqrt(fan_in) of 0
    /// (fan_in from dimension 1 of the weight, as PyTorch counts it) and filling that range,
    /// BatchNorm at scale 1 and shift 0; the same seed gives the same networks.
    #[test]
    fn uniform_init_follows_pytorch_defaults() {
        let config = ModelConfig {
            latent_dim: 16,
            width: 8,
            ..ModelConfig::default()
        };
        let build = |seed| {
            let g = nn::VarStore::new(Device::Cpu);
            let c = nn::VarStore::new(Device::Cpu);
            Generator::new(&g.root(), config).unwrap();
            Critic::new(&c.root(), config).unwrap();
            let mut rng = crate::rng::seeded(seed);
            initialise(&g, Init::Uniform, &mut rng);
            initialise(&c, Init::Uniform, &mut rng);
            (g, c)
        };
        let (g, c) = build(3);
        let vars = |vs: &nn::VarStore| {
            let mut v = vs.variables().into_iter().collect::<Vec<_>>();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        for vs in [&g, &c] {
            let all = vars(vs);
            let weight_of = |layer: &str| {
                let weights = all.iter().filter(|(n, _)| n == &format!("{layer}.weight"));
                weights.map(|(_, w)| w.size()).next().unwrap()
            };
            for (name, t) in all.iter().filter(|(_, t)| t.requires_grad()) {
                let (layer, _) = name.rsplit_once('.').unwrap();
                let values: Vec<f32> = Vec::try_from(t.flatten(0, -1)).unwrap();
                if layer.starts_with("norm") {
                    let want = if name.ends_with("weight") { 1.0 } else { 0.0 };
                    assert!(values.iter().all(|&v| v == want), "{name}");
                    continue;
                }
                let shape = weight_of(layer);
                let fan_in: i64 = shape[1..].iter().product();
                let bound = 1.0 / (fan_in as f32).sqrt();
                let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(largest <= bound, "{name}: {largest} > {bound}");
                if values.len() >= 64 {
                    assert!(largest > 0.8 * bound, "{name} does not fill its range");
                }
            }
        }
        let (g2, _) = build(3);
        let same = vars(&g)
            .iter()
            .zip(vars(&g2))
            .all(|((_, a), (_, b))| a.equal(&b));
        assert!(same, "the same seed gives the same generator");
    }

    #[test]
    fn leaky_relu_has_slope_one_fifth_and_its_gradient() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 0.5, 3.0]).set_requires_grad(true);
        let y = leaky_relu_02(&x);
        let values: Vec<f32> = Vec::try_from(&y).unwrap();
        let expected = [-0.4f32, -0.1, 0.0, 0.5, 3.0];
        for (v, e) in values.iter().zip(expected) {
            assert!((v - e).abs() < 1e-6, "{values:?}");
        }
        y.sum(Kind::Float).backward();
        let grads: Vec<f32> = Vec::try_from(x.grad()).unwrap();
        for (g, x) in grads.iter().zip([-2.0f32, -0.5, 0.0, 0.5, 3.0]) {
            if x != 0.0 {
                let e = if x > 0.0 { 1.0 } else { 0.2 };
                assert!((g - e).abs() < 1e-6, "{grads:?}");
            }
        }
    }
}
