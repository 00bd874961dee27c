//! Whose requests a caller may see: the wall between tenants that analytics, the drill-down,
//! spend and feedback apply.

/// Whose requests a key may read (analytics, the drill-down, spend) and give feedback on.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Scope {
    /// Router keys of the config (admins), or a server without keys: everything.
    #[default]
    All,
    /// A virtual key of a team: the requests of every key of that team.
    Team(String),
    /// A virtual key without a team: its own requests.
    Key(String),
}

impl Scope {
    /// Whether a logged request (its `team` and `key` fields) is visible in this scope.
    pub fn sees(&self, team: Option<&str>, key: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Team(t) => team == Some(t.as_str()),
            Scope::Key(k) => key == Some(k.as_str()),
        }
    }
}
