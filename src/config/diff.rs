//! What a reload changes, by check name.

use std::collections::HashMap;

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
    /// How each check of the new config relates to the running ones, in its order.
    pub changes: Vec<Change>,
}

impl Diff {
    /// Compares the running checks `old` and the new config's `new` by check
    /// name, in time linear in their number (reloads of thousands of checks).
    pub fn between<'a>(old: impl IntoIterator<Item = &'a Check>, new: &[Check]) -> Self {
        let mut running: HashMap<&str, &Check> = old.into_iter().map(|c| (&*c.name, c)).collect();
        let mut diff = Diff::default();
        for check in new {
            let change = match running.remove(&*check.name) {
                None => Change::Added,
                Some(o) if o.same_as(check) => Change::Unchanged,
                Some(_) => Change::Changed,
            };
            let name = check.name.to_string();
            match change {
                Change::Added => diff.added.push(name),
                Change::Changed => diff.changed.push(name),
                Change::Unchanged => diff.unchanged.push(name),
            }
            diff.changes.push(change);
        }
        // What was not taken by a new check is removed.
        diff.removed = running.into_keys().map(str::to_owned).collect();
        diff.removed.sort();
        diff
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load_str;

    fn checks(defaults: &str, url: &str) -> Vec<Check> {
        let text = format!(
            "[defaults]\n{defaults}\n[[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{url}\"\n"
        );
        load_str(Path::new("c.toml"), &text).unwrap().checks
    }

    #[test]
    fn a_check_changes_with_its_table_or_its_resolved_schedule() {
        let old = checks("interval = \"1s\"", "http://127.0.0.1:1/");
        let change = |new: &[Check]| Diff::between(&old, new).changes;
        assert_eq!(
            change(&checks("interval = \"1s\"", "http://127.0.0.1:1/")),
            [Change::Unchanged]
        );
        assert_eq!(
            change(&checks("interval = \"1s\"", "http://127.0.0.1:2/")),
            [Change::Changed]
        );
        // The same table under other defaults runs on another schedule.
        assert_eq!(
            change(&checks("interval = \"2s\"", "http://127.0.0.1:1/")),
            [Change::Changed]
        );
    }
}
