//! `dom0-boot-entry INSTALL_DIR`: what dom0 does to its boot loader at the end
//! of XENSERVER_FIRSTBOOT, and nothing else: copy Ubuntu's newest kernel and
//! initrd from `/mnt/ubuntu/boot` into `/boot`, add the Ubuntu entry (with the
//! kernel arguments START recorded in INSTALL_DIR, as dom0 sees it), make it
//! the default.
//!
//! Why an example and not the binary: the real-VM test (tests/vm/
//! convert-ubuntu-half) has no XenServer to run XENSERVER_FIRSTBOOT in (xapi,
//! an appliance), yet the entry that state writes must be shown to boot Ubuntu
//! under a real GRUB. So the test plays dom0: it runs this in a chroot of a
//! fake dom0 disk whose GRUB boots the VM, with this library code, the same
//! functions the state calls.

use std::process::ExitCode;

use bin_convert::paths::Files;
use bin_convert::system::System;

fn main() -> ExitCode {
    let Some(install_dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: dom0-boot-entry INSTALL_DIR");
        return ExitCode::from(2);
    };
    let files = Files::new(install_dir.into());
    let system = System::new(None);
    let result = bin_convert::steps::xenserver_firstboot::add_ubuntu_boot_entry(&system, &files)
        .and_then(|()| bin_convert::bootloader::detect(&system, "/")?.set_default(&system, true));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dom0-boot-entry: {error:#}");
            ExitCode::FAILURE
        }
    }
}
