//! Configuration as data: `file.rs` is the TOML as written (with its
//! defaults), `types.rs` the typed [`Config`] the rest of the gateway
//! reads, and `validate/` turns the one into the other, one function per
//! section. Validation is a pure function shared by `serve`, reload and
//! `check-config`: it builds no runtime state (the route table's counters
//! and limiters are made where the runtime is built).

mod file;
mod types;
mod validate;

use std::path::{Path, PathBuf};

pub use types::*;
pub use validate::{parse_algorithm, parse_duration};

/// Why a config could not be loaded: every problem, each naming its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// One line per problem, for `check-config` and reload logs.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(v) => v.clone(),
            other => vec![other.to_string()],
        }
    }
}

/// Parse TOML text into the raw file structs.
fn parse(text: &str, path: &Path) -> Result<file::FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Read, parse and validate the file. Relative paths inside the config are
/// taken relative to the current directory (as an operator types them).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let raw = parse(&text, path)?;
    validate::validate(raw).map_err(ConfigError::Invalid)
}

/// Parse and validate TOML text (tests, `demo`).
pub fn from_str(text: &str) -> Result<Config, ConfigError> {
    let raw = parse(text, Path::new("<inline>"))?;
    validate::validate(raw).map_err(ConfigError::Invalid)
}
