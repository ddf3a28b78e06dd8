//! What the cores must never read themselves and an adapter reads once: the OS's randomness, the
//! clocks, and the descriptor limit. (Catching the shutdown signals is each runtime's own.)

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wazuh_cluster_protocol::connection::WallClock;

/// A node seed from the OS's random source (`getrandom`). Time and pid are not enough: the seed
/// drives Fernet IVs and task ids, which a peer must not guess.
///
/// # Errors
/// The OS has no random source to offer (the text of `getrandom`'s error).
pub fn os_seed() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(u64::from_le_bytes(bytes))
}

/// The soft `RLIMIT_NOFILE` before and after [`raise_descriptor_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit found at start (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now (the hard one when raising it worked).
    pub after: Option<u64>,
}

/// The soft `RLIMIT_NOFILE` now (`None`: unlimited).
pub fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: every connection, transfer and local
/// client costs descriptors, and the common soft default of 1,024 ran out under an attack
/// (issue 12) while the hard limit allowed far more.
///
/// # Errors
/// The kernel refused the new limit (the text of its error); the old one stays.
pub fn raise_descriptor_limit() -> Result<DescriptorLimit, String> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum {
        return Ok(DescriptorLimit {
            before,
            after: before,
        });
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(|e| e.to_string())?;
    Ok(DescriptorLimit {
        before,
        after: getrlimit(Resource::Nofile).current,
    })
}

/// Reads the wall clock once and ties it to the monotonic clock. The instant is moved back by the
/// sub-second part of the wall time, so `unix_secs` is exact at `instant` (the anchor holds whole
/// seconds only).
pub fn wall_clock_now() -> WallClock {
    let instant = Instant::now();
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let sub = Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
    match instant.checked_sub(sub) {
        Some(anchor) => WallClock::new(anchor, since_epoch.as_secs()),
        None => WallClock::new(instant, since_epoch.as_secs()),
    }
}

/// Wall-clock time at `now` from `clock`, with sub-second precision (what effects are given): the
/// node's own conversion, so effects and the node date things alike.
pub use wazuh_cluster_sync::roles::unix_time_at;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_os_seeds_differ() {
        // 2^-64 odds of a false failure; equal seeds would mean a constant source.
        assert_ne!(os_seed().unwrap(), os_seed().unwrap());
    }

    #[test]
    fn the_soft_descriptor_limit_reaches_the_hard_one() {
        let raised = raise_descriptor_limit().unwrap();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(raised.after, now.current);
        assert_eq!(now.current, now.maximum);
        // Never lowered (`None` is unlimited).
        assert!(raised.after.unwrap_or(u64::MAX) >= raised.before.unwrap_or(u64::MAX));
    }
}
