//! The three worker → master synchronisations of profile 3.9: the one value every part of the
//! node (roles, effects, events, health) names a synchronisation by.

/// The three worker → master synchronisations of profile 3.9 and their command families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncKind {
    /// Integrity (`sync_i_w_m*`, answered by `sync_m_c*`).
    Integrity,
    /// Extra-valid agent-groups sent back after an integrity round (`sync_e_w_m*`).
    ExtraValid,
    /// Agent-info (`sync_a_w_m*`, every `sync_files`).
    AgentInfo,
}

impl SyncKind {
    /// All kinds, in lock order.
    pub const ALL: [SyncKind; 3] = [
        SyncKind::Integrity,
        SyncKind::ExtraValid,
        SyncKind::AgentInfo,
    ];

    /// The task command (`sync_i_w_m`, `sync_e_w_m`, `sync_a_w_m`); `_p`, `_e` and `_r` are
    /// appended to it for the permission, end and error commands.
    pub fn command(self) -> &'static str {
        match self {
            SyncKind::Integrity => "sync_i_w_m",
            SyncKind::ExtraValid => "sync_e_w_m",
            SyncKind::AgentInfo => "sync_a_w_m",
        }
    }

    /// The kind's slot in per-kind arrays (locks, rounds, timers).
    pub(crate) fn index(self) -> usize {
        match self {
            SyncKind::Integrity => 0,
            SyncKind::ExtraValid => 1,
            SyncKind::AgentInfo => 2,
        }
    }
}

/// One value per [`SyncKind`], indexed by kind (so no code indexes per-kind arrays by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PerKind<T>([T; 3]);

impl<T> PerKind<T> {
    /// The value of `kind`.
    pub(crate) fn get(&self, kind: SyncKind) -> &T {
        &self.0[kind.index()]
    }

    /// The value of `kind`, mutably.
    pub(crate) fn get_mut(&mut self, kind: SyncKind) -> &mut T {
        &mut self.0[kind.index()]
    }

    /// Every value with its kind, in [`SyncKind::ALL`] order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SyncKind, &T)> {
        SyncKind::ALL.into_iter().zip(self.0.iter())
    }

    /// Every value, in [`SyncKind::ALL`] order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::{PerKind, SyncKind};

    #[test]
    fn kinds_map_to_upstream_commands_and_distinct_slots() {
        let commands: Vec<&str> = SyncKind::ALL.iter().map(|k| k.command()).collect();
        assert_eq!(commands, ["sync_i_w_m", "sync_e_w_m", "sync_a_w_m"]);
        let mut slots = PerKind::<u8>::default();
        for (n, kind) in SyncKind::ALL.into_iter().enumerate() {
            *slots.get_mut(kind) = n as u8 + 1;
        }
        let seen: Vec<(SyncKind, u8)> = slots.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(
            seen,
            [
                (SyncKind::Integrity, 1),
                (SyncKind::ExtraValid, 2),
                (SyncKind::AgentInfo, 3)
            ]
        );
    }
}
