//! The node's consoles: where its phase lines go ([`xitc_common::phase`]),
//! so the cloud's console log (Nova's `os-getConsoleOutput`) shows the
//! conversion while the node has no SSH. They are the `console=` devices of
//! the running kernel, all of them, not `/dev/console` (only the last one) or
//! `/dev/kmsg` (Ubuntu's cloud images and dom0 may boot with a quiet printk):
//! `ttyS0` on KVM clouds, `hvc0` in dom0, which Xen forwards to its serial
//! port, `tty0`/`tty1` the screen. Without any `console=` the kernel's
//! default, `/dev/console`.

use crate::system::System;

/// The device files of `console=` arguments in `cmdline` (`console=ttyS0,115200n8`
/// → `/dev/ttyS0`), each once, in order; `/dev/console` when there is none.
pub fn devices(cmdline: &str) -> Vec<String> {
    let mut devices: Vec<String> = Vec::new();
    for argument in cmdline.split_whitespace() {
        let Some(value) = argument.strip_prefix("console=") else {
            continue;
        };
        let name = value.split(',').next().unwrap_or_default();
        let usable = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let device = format!("/dev/{name}");
        if usable && !devices.contains(&device) {
            devices.push(device);
        }
    }
    if devices.is_empty() {
        devices.push("/dev/console".to_owned());
    }
    devices
}

/// Writes `line` and a newline to every console of this boot. A console
/// that is not there or cannot be written is passed over: a line that cannot
/// be written never stops the conversion.
pub fn write_line(system: &System, line: &str) {
    let cmdline = system.read_to_string("/proc/cmdline").unwrap_or_default();
    // A terminal in raw mode would not return the carriage: CR LF, as the
    // kernel writes.
    let bytes = format!("{line}\r\n");
    for device in devices(&cmdline) {
        let _ = system.write_to_device(&device, bytes.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_of_the_command_line_once() {
        assert_eq!(
            devices("BOOT_IMAGE=/vmlinuz root=UUID=x ro console=tty1 console=ttyS0,115200n8 quiet"),
            ["/dev/tty1", "/dev/ttyS0"]
        );
        assert_eq!(
            devices("root=LABEL=root-x ro console=hvc0 console=tty0 console=hvc0"),
            ["/dev/hvc0", "/dev/tty0"]
        );
        assert_eq!(devices("root=/dev/vda1 quiet"), ["/dev/console"]);
        assert_eq!(
            devices("console=../../etc/passwd console= console=ttyS1"),
            ["/dev/ttyS1"]
        );
    }

    #[test]
    fn lines_reach_the_consoles_that_are_there() {
        let dir = tempfile::tempdir().unwrap();
        let system = System::new(Some(dir.path().to_path_buf()));
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::write(
            dir.path().join("proc/cmdline"),
            "console=tty1 console=ttyS0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("dev/ttyS0"), "").unwrap();
        write_line(&system, "xitc-phase: START - begin");
        write_line(&system, "xitc-phase: START preflight begin");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dev/ttyS0")).unwrap(),
            "xitc-phase: START - begin\r\nxitc-phase: START preflight begin\r\n"
        );
        // tty1 is not there: passed over, and not created.
        assert!(!dir.path().join("dev/tty1").exists());
    }
}
