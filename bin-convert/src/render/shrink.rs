//! The initramfs hook and premount script that shrink the root file system
//! and partition 1 at boot, before the root is mounted (resize2fs cannot
//! shrink a mounted ext4).

use xitc_common::exit;

/// What the boot-time shrink works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shrink {
    /// The root partition (`/dev/xvda1`), partition 1 of `disk`.
    pub partition: String,
    /// Its disk (`/dev/xvda`), whose partition table is rewritten.
    pub disk: String,
    /// The size the file system is shrunk to.
    pub target_bytes: u64,
}

/// Sectors partition 1 keeps beyond the end of its file system.
pub const SHRINK_MARGIN_SECTORS: u64 = 2048;

/// The initramfs local-premount script that shrinks the root file system to
/// `target_bytes`, then partition 1 to the file system's real size (its block
/// count times its block size, read back with dumpe2fs) plus a margin. It runs
/// before / is mounted. POSIX sh for klibc's shell: no grep, sed or awk, only
/// the programs the hook copies in. Any problem leaves the disk as it is and lets
/// the boot go on (SETUP_INSTALLER then sees no shrink and stops); running it
/// again changes nothing more.
pub fn shrink_premount_script(shrink: &Shrink) -> anyhow::Result<String> {
    for (what, value) in [("partition", &shrink.partition), ("disk", &shrink.disk)] {
        if !value.starts_with('/')
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        {
            return Err(exit::usage(format!(
                "shrink {what} {value:?} is not a device path"
            )));
        }
    }
    let target_kib = shrink.target_bytes / 1024;
    if target_kib == 0 {
        return Err(exit::usage("the shrink target is 0"));
    }
    Ok(format!(
        r#"#!/bin/sh
# xitc-convert: shrink the root file system and partition 1 before / is mounted.
PREREQ=""
prereqs() {{ echo "$PREREQ"; }}
case "$1" in prereqs) prereqs; exit 0 ;; esac

PART='{partition}'
DISK='{disk}'
TARGET_KIB={target_kib}
MARGIN_SECTORS={SHRINK_MARGIN_SECTORS}

say() {{ echo "xitc-shrink: $*"; }}
# A phase line (README "Phase lines") on every console= of this boot, as
# xitc-convert writes them: the console log shows the shrink boot too.
# XITC_CMDLINE and XITC_DEV point elsewhere in tests only.
phase() {{
    read -r cmdline < "${{XITC_CMDLINE:-/proc/cmdline}}" || cmdline=
    consoles=
    for arg in $cmdline; do
        case "$arg" in console=*) name=${{arg#console=}}; consoles="$consoles ${{name%%,*}}" ;; esac
    done
    [ -n "$consoles" ] || consoles=console
    for name in $consoles; do
        case "$name" in ''|*[!A-Za-z0-9_.]*) continue ;; esac
        device="${{XITC_DEV:-/dev}}/$name"
        [ -e "$device" ] && echo "xitc-phase: SHRINK - $*" >> "$device" 2> /dev/null
    done
}}
give_up() {{ say "$*; the disk is left as it is"; phase "FAILED: $*; the disk is left as it is"; exit 0; }}

phase begin

# Sets BLOCK_SIZE and BLOCK_COUNT from the file system's superblock.
read_geometry() {{
    BLOCK_SIZE=
    BLOCK_COUNT=
    header=$(dumpe2fs -h "$PART" 2> /dev/null) || give_up "dumpe2fs $PART failed"
    while IFS=: read -r key value; do
        case "$key" in
            "Block size") BLOCK_SIZE=${{value##* }} ;;
            "Block count") BLOCK_COUNT=${{value##* }} ;;
        esac
    done << HEADER
$header
HEADER
    if [ -z "$BLOCK_SIZE" ] || [ -z "$BLOCK_COUNT" ]; then
        give_up "no block size or count for $PART"
    fi
}}

e2fsck -fy "$PART" > /dev/null 2>&1
status=$?
[ "$status" -le 1 ] || give_up "e2fsck $PART found errors it did not fix ($status)"

read_geometry
if [ $((BLOCK_COUNT * BLOCK_SIZE / 1024)) -gt "$TARGET_KIB" ]; then
    minimum=$(resize2fs -P "$PART" 2> /dev/null) || give_up "resize2fs -P $PART failed"
    minimum=${{minimum##* }}
    if [ $((minimum * BLOCK_SIZE / 1024)) -gt "$TARGET_KIB" ]; then
        give_up "the file system needs $((minimum * BLOCK_SIZE / 1024)) KiB, more than $TARGET_KIB KiB: it does not fit"
    fi
    say "shrinking the file system on $PART to $TARGET_KIB KiB"
    resize2fs "$PART" "${{TARGET_KIB}}K" > /dev/null 2>&1 || give_up "resize2fs $PART failed"
    read_geometry
fi

fs_sectors=$(((BLOCK_COUNT * BLOCK_SIZE + 511) / 512))
new_sectors=$((fs_sectors + MARGIN_SECTORS))
old_sectors=$(blockdev --getsz "$PART") || give_up "blockdev --getsz $PART failed"
if [ "$new_sectors" -ge "$old_sectors" ]; then
    say "partition 1 is already $old_sectors sectors; nothing to do"
    phase "ok: partition 1 is already $old_sectors sectors"
    exit 0
fi
say "shrinking partition 1 of $DISK from $old_sectors to $new_sectors sectors"
tries=0
until echo ",$new_sectors" | sfdisk -q -N 1 --no-reread "$DISK" > /dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 5 ] || give_up "sfdisk could not rewrite the partition table of $DISK"
    sleep 1
done
if [ -b "$DISK" ]; then
    blockdev --rereadpt "$DISK" > /dev/null 2>&1 || say "the kernel will see the new table at the next boot"
fi
say "done"
phase "ok: the file system is $((BLOCK_COUNT * BLOCK_SIZE / 1024)) KiB, partition 1 $new_sectors sectors"
"#,
        partition = shrink.partition,
        disk = shrink.disk,
    ))
}

/// The initramfs hook that puts the shrink's programs into the initramfs (an
/// initramfs without busybox has only klibc's tools).
pub const SHRINK_HOOK: &str = r#"#!/bin/sh
# xitc-convert: the programs the shrink script needs, in the initramfs.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for program in e2fsck resize2fs dumpe2fs sfdisk blockdev; do
    path=$(command -v "$program") || { echo "xitc-convert hook: $program not found" >&2; exit 1; }
    copy_exec "$path" /sbin
done
"#;
