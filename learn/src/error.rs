//! The learned core's error type: every message names the file or value at fault and, where
//! there is one, the command that fixes it.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LearnError {
    /// A file the encoder or artifact needs is absent.
    #[error("{what} file {} is missing; run `{fix}` to create it", path.display())]
    Missing {
        what: &'static str,
        path: PathBuf,
        fix: &'static str,
    },
    /// A file exists but cannot be used (unreadable, malformed, corrupt, from another build).
    #[error("{0}")]
    BadFile(String),
    /// An encoder and an artifact (or a config and an artifact) do not belong together.
    #[error("{0}")]
    Mismatch(String),
    /// The encoder failed on a text.
    #[error("{0}")]
    Encode(String),
    /// A setting the learned core reads from the environment is invalid.
    #[error("{0}")]
    Setting(String),
}
