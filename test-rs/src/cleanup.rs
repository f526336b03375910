//! What a run created, and deleting it: newest first, on success, failure
//! and Ctrl-C, every failure reported; leftovers of an earlier run with the
//! same postfix first.

use std::time::Duration;

use anyhow::Context as _;

use xitc_common::exit;
use xitc_common::poll::{Deadline, Schedule, SystemClock, poll_until};

use crate::programs::check_interrupted;
use crate::run::{Run, deadline};
use crate::say::{TOOL, say};

impl Run<'_> {
    pub fn remove_leftovers(&self) -> anyhow::Result<()> {
        let names = self.names.clone();
        self.steps.run("remove leftovers of an earlier run", || {
            let deadline = deadline(Duration::from_secs(900));
            for name in [&names.snapshot_server, &names.test_server] {
                self.delete_servers_named(name, &deadline)?;
            }
            self.delete_images_named(&names.image, &deadline)?;
            self.client.delete_keypair(&names.keypair, &deadline)
        })
    }

    fn delete_servers_named(&self, name: &str, deadline: &Deadline) -> anyhow::Result<()> {
        for server in self.client.list_servers(Some(name), deadline)? {
            if server.name == name {
                self.client.delete_server(&server.id, deadline)?;
                self.wait_server_gone(&server.id, true)?;
            }
        }
        Ok(())
    }

    pub fn delete_images_named(&self, name: &str, deadline: &Deadline) -> anyhow::Result<()> {
        for image in self.client.list_images(Some(name), deadline)? {
            if image.name == name {
                self.client.delete_image(&image.id, deadline)?;
            }
        }
        Ok(())
    }

    /// Waits until server `id` is gone. `interruptible`: Ctrl-C ends the wait
    /// (leftover removal), or not (the cleanup's own wait must finish).
    pub fn wait_server_gone(&self, id: &str, interruptible: bool) -> anyhow::Result<()> {
        let schedule = Schedule::new(self.cli.boot_timeout, self.cli.interval);
        poll_until(&SystemClock, schedule, |deadline| {
            if interruptible {
                check_interrupted()?;
            }
            Ok(self
                .client
                .get_server(id, deadline)?
                .is_none()
                .then_some(()))
        })
        .with_context(|| format!("waiting for server {id} to be deleted"))
    }

    /// Deletes what this run created, newest first; reports every failure.
    pub fn cleanup(&self) -> anyhow::Result<()> {
        let created = std::mem::take(&mut *self.created.borrow_mut());
        let keep_image = self.cli.keep_image;
        self.steps.run("clean up", || {
            let deadline = deadline(Duration::from_secs(900));
            let mut failures = Vec::new();
            let mut attempt = |what: String, result: anyhow::Result<()>| {
                if let Err(error) = result {
                    exit::note(TOOL, &format!("cleanup: {what}: {error:#}"));
                    failures.push(what);
                }
            };
            if let Some(id) = &created.snapshot_server {
                attempt(
                    format!("delete server {id}"),
                    self.delete_server(id, &deadline),
                );
            }
            if let Some(id) = &created.image {
                if keep_image {
                    say(&format!("    --keep-image: keeping image {id}"));
                } else {
                    attempt(
                        format!("delete image {id}"),
                        self.client.delete_image(id, &deadline),
                    );
                }
            }
            if let Some(id) = &created.test_server {
                attempt(
                    format!("delete server {id}"),
                    self.delete_server(id, &deadline),
                );
            }
            if let Some(name) = &created.keypair {
                attempt(
                    format!("delete keypair {name}"),
                    self.client.delete_keypair(name, &deadline),
                );
            }
            if failures.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("could not {}", failures.join(", "))
            }
        })
    }

    fn delete_server(&self, id: &str, deadline: &Deadline) -> anyhow::Result<()> {
        self.client.delete_server(id, deadline)?;
        self.wait_server_gone(id, false)
    }
}
