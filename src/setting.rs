//! An error that names the setting at fault in the library's own terms (`lr`, `n_critic`), so
//! that a front end can name its own way of giving it (a flag, a field of a config file).

/// A setting with a value it cannot take.
#[derive(Debug)]
pub struct BadSetting {
    /// The setting, as the configuration types name it (`lr`, `beta1`, `clip`, `lambda`,
    /// `batch_size`, `n_critic`, ...).
    pub name: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl std::fmt::Display for BadSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadSetting {}

/// Fails with a [`BadSetting`] for `name` unless `ok`.
pub fn check(ok: bool, name: &'static str, message: impl FnOnce() -> String) -> anyhow::Result<()> {
    if ok {
        return Ok(());
    }
    Err(BadSetting {
        name,
        message: message(),
    }
    .into())
}
