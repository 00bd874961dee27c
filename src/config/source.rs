//! Where config text came from, for errors that name file, key and reason, and how the
//! environment is read (tests pass their own).

/// A configuration error: where it is and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "config error in {} at `{}`: {}",
            self.file, self.key, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// Where config text came from (for errors) and how to read the environment.
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    /// An error at `key` of this file.
    pub fn err(&self, key: &str, reason: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.to_string(),
            reason,
        }
    }
}
