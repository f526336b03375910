//! Each state's own steps, one file per state; a step is a function of
//! [`crate::work::Work`]. A step file never imports another: what two states
//! share is in [`crate::shared`] or below. XENSERVER (every dom0 boot after
//! the first) has no steps of its own: it runs [`crate::shared`]'s.

pub mod setup_installer;
pub mod start;
pub mod ubuntu;
pub mod xenserver_firstboot;
