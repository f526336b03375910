//! Steps that more than one state runs: both dom0 states' networking and
//! appliance work (the direct mode's in `direct`), and the sync before a
//! reboot.

pub mod appliance;
pub mod direct;
pub mod dom0;

use crate::work::Work;

/// The step that flushes everything to disk before a reboot.
pub fn sync(work: &mut Work<'_>) -> anyhow::Result<()> {
    work.system.run("sync", &[]).map(drop)
}
