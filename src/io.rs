//! Files: atomic writes (to a temporary file, then renamed, so a crash never loses the previous
//! version), JSON documents, and named tensors in safetensors files.

use anyhow::{bail, ensure, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Writes `path` by calling `write` on a temporary path beside it, then renaming it into place.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let written = write(&tmp)
        .with_context(|| format!("cannot write {}", path.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot move {} into place", path.display()))
        });
    if written.is_err() {
        // A failed write leaves nothing behind; the file it was to replace is untouched.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, |tmp| Ok(std::fs::write(tmp, text + "\n")?))
}

/// Reads JSON of type `T` from `path`, with an error naming the file when it does not parse.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid {what} (corrupt, or written by another program or version)",
            path.display()
        )
    })
}

/// The settings in which two serialisable values differ, one `path: old -> new` per leaf
/// (`train.optimizer.lr: 0.0001 -> 0.0002`), for errors that say what differs.
pub fn differences<T: Serialize>(old: &T, new: &T) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let sub = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    let missing = Value::Null;
                    walk(
                        &sub,
                        x.get(key).unwrap_or(&missing),
                        y.get(key).unwrap_or(&missing),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path}: {a} -> {b}")),
            _ => {}
        }
    }
    let (a, b) = (serde_json::to_value(old), serde_json::to_value(new));
    let mut out = Vec::new();
    if let (Ok(a), Ok(b)) = (a, b) {
        walk("", &a, &b, &mut out);
    }
    out
}

/// Writes named tensors as safetensors, atomically.
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    save_tensors_with_metadata(path, tensors, &BTreeMap::new())
}

/// Writes named tensors as safetensors with `metadata` in the file's header (what the file
/// holds, so that it says so by itself), atomically. Written with the safetensors crate
/// directly: tch's writer has no metadata.
pub fn save_tensors_with_metadata(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut stored = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(Device::Cpu).contiguous();
        let dtype = match t.kind() {
            Kind::Float => Dtype::F32,
            Kind::Double => Dtype::F64,
            Kind::Int64 => Dtype::I64,
            Kind::Int => Dtype::I32,
            Kind::Uint8 => Dtype::U8,
            kind => bail!("{name}: tensors of kind {kind:?} are not saved"),
        };
        let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut bytes, t.numel());
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        stored.push((name.clone(), dtype, shape, bytes));
    }
    let views = stored
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let view = TensorView::new(*dtype, shape.clone(), bytes)
                .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata: HashMap<String, String> = metadata.clone().into_iter().collect();
    let metadata = (!metadata.is_empty()).then_some(metadata);
    write_atomic(path, |tmp| {
        safetensors::serialize_to_file(views, &metadata, tmp).map_err(|e| anyhow::anyhow!("{e:?}"))
    })
}

/// The metadata in the header of a safetensors file (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a safetensors file: {e:?}", path.display()))?;
    Ok(header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// Reads all tensors of a safetensors file.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    ensure!(
        path.is_file(),
        "checkpoint {} does not exist",
        path.display()
    );
    let tensors = Tensor::read_safetensors(path).with_context(|| {
        format!(
            "{} is not a readable safetensors checkpoint (truncated or corrupt)",
            path.display()
        )
    })?;
    Ok(tensors.into_iter().collect())
}

/// The variables of `vs` as named tensors under `prefix`.
pub fn named_variables(vs: &VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (format!("{prefix}/{n}"), t))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Copies the tensors under `prefix` into the variables of `vs`; every variable must be there
/// with its shape, or the checkpoint is from another configuration.
pub fn fill_variables(
    vs: &VarStore,
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
    origin: &Path,
) -> Result<()> {
    for (name, mut var) in vs.variables() {
        let key = format!("{prefix}/{name}");
        let Some(saved) = tensors.get(&key) else {
            bail!(
                "{} lacks {key}: it was written for another model configuration",
                origin.display()
            );
        };
        if saved.size() != var.size() {
            bail!(
                "{} has {key} of shape {:?} where this model needs {:?}: it was written for \
                 another model configuration (image size, channels, width or latent dimension)",
                origin.display(),
                saved.size(),
                var.size()
            );
        }
        let finite = saved.isfinite().all().int64_value(&[]) == 1;
        if !finite {
            bail!(
                "{} holds NaN or infinite values in {key}: the checkpoint is corrupt; resume from \
                 an earlier snapshot or train again",
                origin.display()
            );
        }
        tch::no_grad(|| var.copy_(&saved.to_kind(var.kind())));
    }
    Ok(())
}

/// The current time in UTC as `YYYY-MM-DD HH:MM:SS UTC` (from the system clock; the civil
/// date from days since 1970 by Hinnant's algorithm, to need no date crate for one line).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
