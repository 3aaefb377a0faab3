//! The verdicts a check can take part in.

use serde::{Deserialize, Serialize};

/// A verdict a check can take part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// `/livez`: does the process work at all (restart it if not)?
    Liveness,
    /// `/readyz`: may traffic come?
    Readiness,
    /// `/startupz`: has the service finished starting (latched)?
    Startup,
}

impl Group {
    /// The group's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Liveness => "liveness",
            Group::Readiness => "readiness",
            Group::Startup => "startup",
        }
    }

    /// The endpoint that serves the group's verdict.
    pub fn endpoint(self) -> &'static str {
        match self {
            Group::Liveness => "/livez",
            Group::Readiness => "/readyz",
            Group::Startup => "/startupz",
        }
    }

    /// Every group, in order.
    pub const ALL: [Group; 3] = [Group::Liveness, Group::Readiness, Group::Startup];
}

/// The groups a check takes part in: a set of three bits, copied rather than
/// allocated (every result copies its check's view, groups included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Groups(u8);

impl Groups {
    /// Whether `group` is in the set.
    pub fn contains(self, group: Group) -> bool {
        self.0 & Self::bit(group) != 0
    }

    /// The groups in the set, in [`Group`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Group> {
        Group::ALL.into_iter().filter(move |g| self.contains(*g))
    }

    fn bit(group: Group) -> u8 {
        1 << group as u8
    }
}

impl FromIterator<Group> for Groups {
    fn from_iter<I: IntoIterator<Item = Group>>(groups: I) -> Self {
        Self(groups.into_iter().fold(0, |set, g| set | Self::bit(g)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_a_set_listed_in_order() {
        let groups: Groups = [Group::Startup, Group::Liveness, Group::Startup]
            .into_iter()
            .collect();
        assert!(groups.contains(Group::Startup) && groups.contains(Group::Liveness));
        assert!(!groups.contains(Group::Readiness));
        let listed: Vec<Group> = groups.iter().collect();
        assert_eq!(listed, [Group::Liveness, Group::Startup]);
        assert_eq!(Groups::default().iter().count(), 0);
    }
}
