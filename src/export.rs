//! A trained run for use outside adgan: the generator and critic as the state dicts of plain
//! PyTorch DCGAN `nn.Sequential` models, in one safetensors file whose header carries the model
//! configuration.
//!
//! The generator's layers are `ConvTranspose2d, BatchNorm2d, ReLU` per stage and a final
//! `ConvTranspose2d, Tanh`, so adgan's `convI` is entry `3I` and `normI` entry `3I + 1` of the
//! Sequential; the critic's are `Conv2d, LeakyReLU(0.2)` per stage and a final `Conv2d`, so its
//! `convI` is entry `2I`. Keys are prefixed `generator.` and `critic.`.

use crate::io::save_tensors_with_metadata;
use crate::run::TrainedGan;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::Tensor;

/// Version of the exported layout (in the header as `format_version`).
pub const EXPORT_VERSION: u32 = 1;

/// `adgan`'s variable name (`conv2.weight`, `norm1.running_mean`) as the key of the same
/// tensor in a PyTorch `nn.Sequential` of the network (`stride` entries per stage).
fn sequential_key(name: &str, stride: usize) -> Result<String> {
    let Some((layer, field)) = name.split_once('.') else {
        bail!("unexpected variable {name}");
    };
    let index = |prefix: &str| {
        layer
            .strip_prefix(prefix)
            .and_then(|i| i.parse::<usize>().ok())
    };
    let entry = match (index("conv"), index("norm")) {
        (Some(i), _) => stride * i,
        (_, Some(i)) => stride * i + 1,
        _ => bail!("unexpected variable {name}"),
    };
    Ok(format!("{entry}.{field}"))
}

fn sequential_state(vs: &VarStore, prefix: &str, stride: usize) -> Result<Vec<(String, Tensor)>> {
    let mut state = Vec::new();
    for (name, tensor) in vs.variables() {
        let key = sequential_key(&name, stride)?;
        // PyTorch's BatchNorm also keeps a step count; a strict load_state_dict wants it.
        if let Some(entry) = key.strip_suffix(".running_mean") {
            let count = Tensor::from(0i64);
            state.push((format!("{prefix}.{entry}.num_batches_tracked"), count));
        }
        state.push((format!("{prefix}.{key}"), tensor.detach()));
    }
    state.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(state)
}

/// The state dicts of `gan` with PyTorch `nn.Sequential` keys (see the module documentation).
pub fn pytorch_state(gan: &TrainedGan) -> Result<Vec<(String, Tensor)>> {
    let mut state = sequential_state(&gan.generator_vs, "generator", 3)?;
    state.extend(sequential_state(&gan.critic_vs, "critic", 2)?);
    Ok(state)
}

/// Writes the PyTorch export of `gan` to `path`; the header holds the model configuration
/// (`model`, JSON), the iteration, and how the layers are laid out.
pub fn export_pytorch(gan: &TrainedGan, path: &Path) -> Result<()> {
    let metadata = BTreeMap::from([
        ("format".to_string(), "adgan-pytorch-dcgan".to_string()),
        ("format_version".to_string(), EXPORT_VERSION.to_string()),
        (
            "model".to_string(),
            serde_json::to_string(&gan.config.model)?,
        ),
        ("iteration".to_string(), gan.iteration.to_string()),
        (
            "generator".to_string(),
            "nn.Sequential: per stage ConvTranspose2d(4, stride 1 then 2, bias=False), \
             BatchNorm2d, ReLU; last ConvTranspose2d, Tanh"
                .to_string(),
        ),
        (
            "critic".to_string(),
            "nn.Sequential: per stage Conv2d(4, stride 2, padding 1), LeakyReLU(0.2); last \
             Conv2d(4, stride 1, padding 0)"
                .to_string(),
        ),
    ]);
    save_tensors_with_metadata(path, &pytorch_state(gan)?, &metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_sequential_layout() {
        assert_eq!(sequential_key("conv0.weight", 3).unwrap(), "0.weight");
        assert_eq!(
            sequential_key("norm0.running_var", 3).unwrap(),
            "1.running_var"
        );
        assert_eq!(sequential_key("conv3.weight", 3).unwrap(), "9.weight");
        assert_eq!(sequential_key("conv2.bias", 2).unwrap(), "4.bias");
        assert!(sequential_key("weird", 2).is_err());
    }
}
