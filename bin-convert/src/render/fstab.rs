//! Ubuntu's fstab around the install, in two edits. Before it (SETUP_INSTALLER,
//! [`make_optional`]), the lines of partitions the installer will delete are
//! made harmless without losing them: the install may still fail, and GRUB
//! then falls back to an Ubuntu that needs its `/boot`. After it (dom0's first
//! boot, [`retire`]), those partitions are gone for good, and the lines go:
//! with only `nofail`, systemd still starts a job that waits 90 s for each
//! missing device on every bounce (seen in the real-VM test).

use crate::disk::{FstabEntry, parse_fstab};

/// fstab as it was before [`make_optional`] changed it.
pub const FSTAB_BEFORE: &str = "/etc/fstab.xitc-convert-before";

/// What comments out a line whose partition the installer deletes.
const RETIRED: &str = "# xitc-convert: its partition is deleted by the installer: ";

/// The line before each line [`make_optional`] made optional, which
/// [`retire`] looks for.
const OPTIONAL_UNTIL_INSTALLED: &str =
    "# xitc-convert: optional until the installer deletes its partition (then commented out):";

/// The mount option [`make_optional`] adds: the mount is only wanted by
/// local-fs.target and not ordered before it, so boot goes on without the
/// partition (systemd.mount(5)), and mounts it when it is there. No device
/// timeout: under a slow boot (the real-VM test's TCG) even a partition that is
/// there can take seconds to appear, and a short timeout then skips it.
pub const FSTAB_OPTIONAL: &str = "nofail";

/// `text` with the lines of the `doomed` entries made harmless: a line that
/// names its partition by UUID, PARTUUID or label gets [`FSTAB_OPTIONAL`]
/// and the [`OPTIONAL_UNTIL_INSTALLED`] line before it (no partition XenServer
/// makes has that identity, and while the install has not happened the
/// partition is still there and mounted as before, so `/boot` stays where
/// Ubuntu's GRUB reads it); a line that names a device (`/dev/vda15`) is
/// commented out at once: XenServer's own partitions take such names. Applying
/// it again changes nothing.
pub fn make_optional(text: &str, doomed: &[FstabEntry]) -> String {
    let mut changed = String::with_capacity(text.len() + 256);
    let mut previous = "";
    for line in text.lines() {
        let entry = parse_fstab(line).into_iter().next();
        match entry.filter(|entry| doomed.contains(entry)) {
            Some(entry) if entry.spec.starts_with("/dev/") => {
                changed.push_str(RETIRED);
                changed.push_str(line);
            }
            Some(_) => {
                if previous != OPTIONAL_UNTIL_INSTALLED {
                    changed.push_str(OPTIONAL_UNTIL_INSTALLED);
                    changed.push('\n');
                }
                changed.push_str(&optional(line));
            }
            None => changed.push_str(line),
        }
        changed.push('\n');
        previous = line;
    }
    changed
}

/// `text` with each line [`make_optional`] made optional commented out (its
/// [`OPTIONAL_UNTIL_INSTALLED`] line dropped), and the mount points of those
/// lines. Applying it again changes nothing.
pub fn retire(text: &str) -> (String, Vec<String>) {
    let mut changed = String::with_capacity(text.len());
    let mut retired = Vec::new();
    let mut marked = false;
    for line in text.lines() {
        if line == OPTIONAL_UNTIL_INSTALLED {
            marked = true;
            continue;
        }
        if std::mem::take(&mut marked)
            && let Some(entry) = parse_fstab(line).into_iter().next()
        {
            retired.push(entry.mount_point);
            changed.push_str(RETIRED);
        }
        changed.push_str(line);
        changed.push('\n');
    }
    (changed, retired)
}

/// An fstab line with [`FSTAB_OPTIONAL`] in its options (once), its other
/// fields and their spacing as they were.
fn optional(line: &str) -> String {
    let mut fields: Vec<(usize, &str)> = Vec::new();
    let mut rest = line;
    let mut offset = 0;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        let field = &rest[start..];
        let end = field.find(char::is_whitespace).unwrap_or(field.len());
        fields.push((offset + start, &field[..end]));
        offset += start + end;
        rest = &rest[start + end..];
    }
    match fields.get(3) {
        Some((_, options)) if options.split(',').any(|option| option == FSTAB_OPTIONAL) => {
            line.to_owned()
        }
        Some((at, options)) => format!(
            "{}{options},{FSTAB_OPTIONAL}{}",
            &line[..*at],
            &line[at + options.len()..]
        ),
        // No options field: defaults, then ours (dump and pass default to 0).
        None => format!("{} defaults,{FSTAB_OPTIONAL}", line.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_lines_get_the_options_once_and_keep_their_spacing() {
        assert_eq!(
            optional("LABEL=BOOT\t/boot\text4\tdefaults\t0 2"),
            "LABEL=BOOT\t/boot\text4\tdefaults,nofail\t0 2"
        );
        let once = optional("UUID=B2C4-77E1  /boot/efi  vfat  umask=0077  0  1");
        assert_eq!(
            once,
            "UUID=B2C4-77E1  /boot/efi  vfat  umask=0077,nofail  0  1"
        );
        assert_eq!(optional(&once), once, "a rerun adds nothing");
        assert_eq!(
            optional("LABEL=x /x ext4"),
            "LABEL=x /x ext4 defaults,nofail"
        );
    }

    const NOBLE: &str = "LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0 1\n\
                         LABEL=BOOT\t/boot\text4\tdefaults\t0 2\n\
                         LABEL=UEFI\t/boot/efi\tvfat\tumask=0077\t0 1\n\
                         /dev/vda14 none swap sw 0 0\n\
                         LABEL=data /data ext4 defaults,nofail 0 2\n";

    fn doomed() -> Vec<FstabEntry> {
        parse_fstab(NOBLE)
            .into_iter()
            .filter(|entry| entry.mount_point.starts_with("/boot") || entry.spec == "/dev/vda14")
            .collect()
    }

    #[test]
    fn doomed_lines_are_optional_before_the_install_and_retired_after_it() {
        let optional = make_optional(NOBLE, &doomed());
        assert_eq!(
            optional,
            format!(
                "LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0 1\n\
                 {OPTIONAL_UNTIL_INSTALLED}\n\
                 LABEL=BOOT\t/boot\text4\tdefaults,nofail\t0 2\n\
                 {OPTIONAL_UNTIL_INSTALLED}\n\
                 LABEL=UEFI\t/boot/efi\tvfat\tumask=0077,nofail\t0 1\n\
                 {RETIRED}/dev/vda14 none swap sw 0 0\n\
                 LABEL=data /data ext4 defaults,nofail 0 2\n"
            )
        );
        assert_eq!(make_optional(&optional, &doomed()), optional, "a rerun");
        let (retired, points) = retire(&optional);
        assert_eq!(
            retired,
            format!(
                "LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0 1\n\
                 {RETIRED}LABEL=BOOT\t/boot\text4\tdefaults,nofail\t0 2\n\
                 {RETIRED}LABEL=UEFI\t/boot/efi\tvfat\tumask=0077,nofail\t0 1\n\
                 {RETIRED}/dev/vda14 none swap sw 0 0\n\
                 LABEL=data /data ext4 defaults,nofail 0 2\n"
            )
        );
        assert_eq!(points, ["/boot", "/boot/efi"]);
        assert_eq!(retire(&retired), (retired.clone(), vec![]), "a rerun");
        // The user's own optional mount, and an fstab xitc never touched, stay.
        assert_eq!(retire(NOBLE), (NOBLE.to_owned(), vec![]));
    }
}
