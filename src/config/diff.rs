//! What a reload changes, by check name.

use super::Check;

/// How a check of the new config relates to the running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Same definition: keeps its state, counters and schedule.
    Unchanged,
    /// Same name, new definition: starts over, serving its previous verdict
    /// until the new definition produces one.
    Changed,
    /// A new name.
    Added,
}

/// The difference between the running checks and a new config's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Names only in the new config.
    pub added: Vec<String>,
    /// Names only in the running config.
    pub removed: Vec<String>,
    /// Names in both, with another definition.
    pub changed: Vec<String>,
    /// Names in both, with the same definition.
    pub unchanged: Vec<String>,
}

impl Diff {
    /// Compares `old` and `new` by check name.
    pub fn between(old: &[Check], new: &[Check]) -> Self {
        let mut diff = Diff::default();
        for check in new {
            let name = check.name.to_string();
            match classify(old, check) {
                Change::Added => diff.added.push(name),
                Change::Changed => diff.changed.push(name),
                Change::Unchanged => diff.unchanged.push(name),
            }
        }
        diff.removed = old
            .iter()
            .filter(|o| !new.iter().any(|n| n.name == o.name))
            .map(|o| o.name.to_string())
            .collect();
        diff
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} removed, {} changed, {} unchanged",
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.unchanged.len()
        )
    }
}

/// How `check` relates to the running checks `old`.
pub fn classify(old: &[Check], check: &Check) -> Change {
    match old.iter().find(|o| o.name == check.name) {
        None => Change::Added,
        Some(o) if o.definition == check.definition => Change::Unchanged,
        Some(_) => Change::Changed,
    }
}
