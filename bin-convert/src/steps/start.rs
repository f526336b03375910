//! START's steps, in Ubuntu, before the first reboot.
//!
//! Where the installer's ramdisk comes from: the installer mounts its
//! `make-ramdisk=` device as iso9660, vfat or ext3 only, and Ubuntu's root is
//! ext4 with extents, which does not mount as ext3. So START writes the ramdisk's
//! contents to `<install dir>/xsinst/` on the root file system, and
//! SETUP_INSTALLER — after the boot-time shrink has made room behind partition 1
//! — creates partition 2 as ext3, copies `xsinst/` onto it, and the GRUB entry
//! passes `make-ramdisk=/dev/<installer disk>2`. The installer keeps partition 1
//! (`preserve-first-partition`) and reuses the rest of the disk for dom0 only
//! after it has copied the ramdisk.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use xitc_common::download::{self, Download};
use xitc_common::exit;
use xitc_common::poll::Deadline;
use xitc_common::xva;

use crate::bootloader;
use crate::config::{Config, Mode};
use crate::config_drive::Ipv4Config;
use crate::disk::{Label, parse_df, partition_name};
use crate::installer::{self, Guests, NodeDisk};
use crate::iso::Iso;
use crate::paths::{INITRD_BOOT_DROP_IN, UBUNTU_MOUNT};
use crate::platform::{Boot, Virtualization};
use crate::preflight::{self, MARGIN_BYTES, Node};
use crate::render::{self, Admin, Answers, Dom0Hook, InstallerEntry, Shrink};
use crate::work::Work;

/// How long the downloads may take in all.
const DOWNLOAD_LIMIT: Duration = Duration::from_secs(6 * 3600);

pub fn preflight(work: &mut Work<'_>) -> anyhow::Result<()> {
    let downloads = preflight::downloads(work.config, work.files);
    work.node = Some(preflight::check(
        work.system,
        work.config,
        &downloads,
        preflight::Stage::Start,
    )?);
    // The boot hook starts this program from the install dir; systemd
    // refuses some paths for a program, so they are refused here, first.
    if work.system.exists("/run/systemd/system")
        && let Some(problem) = render::systemd_program_problem(&work.files.binary.to_string_lossy())
    {
        return Err(exit::usage(problem));
    }
    Ok(())
}

/// What a refused START leaves: nothing but its log and its lock. Its steps
/// that may refuse (`plan::START_CHECKS`) change nothing outside the install
/// dir; this removes what they put there (the downloads and their parts, the
/// installer's files, the shrink target). What only a run past its checks
/// writes (the saved config, Ubuntu's boot record, `xsinst/`) goes too,
/// unless such a run installed its boot hook: then the node was changed
/// before this run (a run cut short, rerun by the hook), and the hook's next
/// run needs them. Each removal that fails is logged; the refusal stands.
pub fn forget_refused(work: &Work<'_>) {
    let files = work.files;
    let mut paths = vec![files.shrink_target.clone(), files.installer_dir.clone()];
    if !BOOT_HOOKS.iter().any(|hook| work.system.exists(hook)) {
        paths.extend([
            files.config.clone(),
            files.ubuntu_boot.clone(),
            files.xsinst.clone(),
        ]);
    }
    for download in [&files.iso, &files.appliance_xva] {
        paths.push(download.clone());
        paths.push(download::part_path(download));
    }
    let mut removed = Vec::new();
    for path in paths.iter().filter(|path| work.system.exists(path)) {
        match work.system.remove_all(path) {
            Ok(()) => removed.push(path.display().to_string()),
            Err(error) => work.log.line(&format!(
                "refused: could not remove {}: {error:#}",
                path.display()
            )),
        }
    }
    work.log.line(&if removed.is_empty() {
        "refused before any change: the node is as it was".to_owned()
    } else {
        format!(
            "refused before any change outside the install dir; removed {}",
            removed.join(", ")
        )
    });
}

/// Saves the config with the network source preflight chose in place of
/// `auto`, so that every later run, in Ubuntu or dom0, uses that one.
pub fn save_config(work: &mut Work<'_>) -> anyhow::Result<()> {
    let node = work.node()?;
    work.log.line(&format!(
        "mode {}; network source {}: {}",
        work.config.mode.name(),
        node.network_source.name(),
        node.network_reason
    ));
    if let Some(warning) = preflight::direct_mode_warning(work.config, node) {
        work.log.line(&format!("warning: {warning}"));
    }
    let config = Config {
        network: node.network_source,
        ..work.config.clone()
    };
    config.save(work.system, &work.files.config)
}

/// Records what the entry dom0 adds to boot Ubuntu (XENSERVER_FIRSTBOOT)
/// needs from Ubuntu: its root's UUID and its own kernel arguments, read from
/// this boot's command line, which Ubuntu's own GRUB gave (START runs in
/// Ubuntu as the cloud booted it). Later boots of Ubuntu come from dom0's
/// menu, so only START records them.
pub fn ubuntu_boot(work: &mut Work<'_>) -> anyhow::Result<()> {
    let cmdline = work
        .system
        .read_to_string("/proc/cmdline")
        .context("reading /proc/cmdline")?;
    let (kept, left_out) = bootloader::kept_kernel_args(&cmdline);
    let kept = kept.join(" ");
    work.log.line(&format!(
        "Ubuntu's kernel arguments, for its entry in dom0's boot loader: {kept:?}{}",
        if left_out.is_empty() {
            String::new()
        } else {
            format!(" (left out, unsafe in a boot loader script: {left_out:?})")
        }
    ));
    let record = bootloader::UbuntuBoot {
        root_uuid: root_uuid(work)?,
        args: kept,
    };
    work.system
        .write_json(&work.files.ubuntu_boot, &record, 0o644)
}

/// Ubuntu's root UUID as the ubuntu-boot step recorded it (blkid asked once).
fn recorded_root_uuid(work: &Work<'_>) -> anyhow::Result<String> {
    bootloader::UbuntuBoot::load(work.system, &work.files.ubuntu_boot)
        .map(|record| record.root_uuid)
}

/// Where the boot-hook step puts the hook: the systemd unit, or the upstart
/// job without systemd.
const BOOT_HOOKS: [&str; 2] = [SYSTEMD_UNIT, UPSTART_JOB];
const SYSTEMD_UNIT: &str = "/etc/systemd/system/xitc-convert.service";
const UPSTART_JOB: &str = "/etc/init/xitc-convert.conf";

pub fn boot_hook(work: &mut Work<'_>) -> anyhow::Result<()> {
    let binary = work
        .files
        .binary
        .to_str()
        .context("the install dir is not UTF-8")?;
    let install_dir = work
        .files
        .install_dir
        .to_str()
        .context("the install dir is not UTF-8")?;
    if work.system.exists("/run/systemd/system") {
        let unit = SYSTEMD_UNIT;
        work.system.create_dir_all("/etc/systemd/system")?;
        work.system.write_atomic(
            unit,
            render::systemd_unit(binary, install_dir)?.as_bytes(),
            0o644,
        )?;
        work.system
            .create_dir_all("/etc/systemd/system/multi-user.target.wants")?;
        work.system.symlink(
            unit,
            "/etc/systemd/system/multi-user.target.wants/xitc-convert.service",
        )
    } else {
        work.system.write_atomic(
            UPSTART_JOB,
            render::upstart_job(binary, install_dir).as_bytes(),
            0o644,
        )
    }
}

pub fn download(work: &mut Work<'_>) -> anyhow::Result<()> {
    let sums = [
        work.config.iso_sha256.clone(),
        work.config.appliance_sha256.clone(),
    ];
    let downloads: Vec<Download> = preflight::downloads(work.config, work.files)
        .into_iter()
        .zip(sums)
        .map(|((url, path), sha256)| Download {
            url,
            destination: work.system.path(path),
            sha256,
        })
        .collect();
    let deadline = Deadline::new(Instant::now(), Some(DOWNLOAD_LIMIT));
    let log = &work.log;
    let sums = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        // Someone is watching: bars, and the log gets the result only.
        let bars = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{msg:20} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bar_of: Vec<indicatif::ProgressBar> = downloads
            .iter()
            .map(|download| {
                let bar = bars.add(indicatif::ProgressBar::new(0));
                bar.set_style(style.clone());
                let name = download.destination.file_name().unwrap_or_default();
                bar.set_message(name.to_string_lossy().into_owned());
                bar
            })
            .collect();
        let result = download::fetch_all(&downloads, &deadline, &|index, done, total| {
            if let Some(total) = total {
                bar_of[index].set_length(total);
            }
            bar_of[index].set_position(done);
        });
        for bar in &bar_of {
            bar.finish();
        }
        result?
    } else {
        let steps = download::TenPercent::default();
        download::fetch_all(&downloads, &deadline, &|index, done, total| {
            if let Some(line) = steps.line(index, &downloads[index].url, done, total) {
                log.line(&line);
            }
        })?
    };
    for (download, sum) in downloads.iter().zip(sums) {
        work.log
            .line(&format!("downloaded {} (SHA-256 {sum})", download.url));
    }
    Ok(())
}

fn open_iso(work: &Work<'_>) -> anyhow::Result<Iso> {
    Iso::open(&work.system.path(&work.files.iso))
}

pub fn installer_files(work: &mut Work<'_>) -> anyhow::Result<()> {
    let mut iso = open_iso(work)?;
    let installer = installer::identify(&mut iso)?;
    let name = installer.name();
    work.log.line(&format!("installer: {name}"));
    // Before the disk is touched: an installer that cannot install here.
    let layout = &work.node()?.layout;
    installer
        .check_node(NodeDisk {
            installer_name: &layout.installer_disk,
            dos_label: layout.table.label == Label::Dos,
            bytes: layout.disk_bytes,
            uefi: work.node()?.boot == Boot::Uefi,
        })
        .map_err(exit::usage)?;
    // The appliance VM must be able to start on what it installs.
    let virtualization = &work.node()?.virtualization;
    if work.config.mode == Mode::Appliance {
        installer::check_appliance_can_start(
            &name,
            installer.guests(),
            *virtualization != Virtualization::Absent,
        )
        .map_err(exit::usage)?;
    }
    if installer.guests() == Guests::Unknown && *virtualization == Virtualization::Absent {
        work.log.line(&format!(
            "note: whether {name} runs PV guests is not known here (README \"What each \
             installer can start\"); this node shows no vmx or svm, so no HVM guest will start"
        ));
    }
    let dir = &work.files.installer_dir;
    work.system.create_dir_all(dir)?;
    for (inside, name) in [
        ("install.img", "install.img"),
        ("boot/xen.gz", "xen.gz"),
        ("boot/vmlinuz", "vmlinuz"),
    ] {
        work.system
            .write_atomic_with(dir.join(name), 0o644, |file| {
                iso.copy(inside, file)
                    .map(drop)
                    .map_err(|error| std::io::Error::other(format!("{error:#}")))
            })?;
    }
    work.installer = Some(installer);
    Ok(())
}

/// The appliance mode: the downloaded XVA read as xapi's import will read it
/// (`common::xva`: `ova.xml`, every chunk and checksum), refused when xapi
/// would refuse it or its VM could not start on this installer and node.
/// Nothing is changed before: a refusal leaves the node as it was.
pub fn appliance(work: &mut Work<'_>) -> anyhow::Result<()> {
    if work.config.mode != Mode::Appliance {
        return Ok(());
    }
    let path = work.system.path(&work.files.appliance_xva);
    let file = std::fs::File::open(&path)
        .with_context(|| format!("opening the appliance XVA {}", path.display()))?;
    let export = xva::read_export(file)
        .map_err(|error| exit::usage(format!("the appliance XVA cannot be imported: {error:#}")))?;
    let vm = &export.vm;
    work.log.line(&format!(
        "appliance: {:?}, a {} VM{}, {} disk(s) of {} bytes, export version {}; its chunks and checksums are sound",
        vm.name_label,
        vm.domain_type.name(),
        if vm.derived { " (derived from HVM_boot_policy)" } else { "" },
        export.disks.len(),
        export.disks.iter().map(|disk| disk.virtual_size).sum::<u64>(),
        export.export_vsn
    ));
    let installer = work.installer()?;
    let name = installer.name();
    let guests = installer.guests();
    let virtualization = &work.node()?.virtualization;
    installer::check_appliance_boots(&name, guests, vm, *virtualization != Virtualization::Absent)
        .map_err(exit::usage)?;
    if guests == Guests::Unknown && vm.domain_type == xva::DomainType::Pv {
        work.log.line(&format!(
            "note: whether {name} runs PV guests is not known here (README \"What each \
             installer can start\"); the appliance is a PV VM"
        ));
    }
    Ok(())
}

/// dom0's management interface as the installer sets it up: a temporary
/// address in the appliance mode (the first boot moves dom0 behind the
/// appliance), the cloud's network in the direct mode: DHCP, or what the
/// config drive says (dom0 reads the drive again on every boot).
fn admin_interface(config: &Config, node: &Node) -> Admin {
    match (config.mode, &node.drive_network) {
        (Mode::Appliance, _) => Admin::Temporary,
        (
            Mode::Direct,
            Some(Ipv4Config::Static {
                address,
                prefix,
                gateway,
                nameservers,
                ..
            }),
        ) => Admin::Static {
            address: *address,
            prefix: *prefix,
            gateway: *gateway,
            nameservers: nameservers.clone(),
        },
        (Mode::Direct, _) => Admin::Dhcp,
    }
}

pub fn ramdisk_source(work: &mut Work<'_>) -> anyhow::Result<()> {
    let mut iso = open_iso(work)?;
    let installer = installer::identify(&mut iso)?;
    let xsinst = &work.files.xsinst;
    work.system.create_dir_all(xsinst)?;
    work.system
        .hard_link(&work.files.iso, xsinst.join("xenserver.iso"))?;
    let answers = Answers {
        dialect: installer.generation.dialect(),
        disk: work.node()?.layout.installer_disk.clone(),
        root_password_hash: work.config.root_password_hash.clone(),
        source_url: "file:///tmp/ramdisk".to_owned(),
        post_install_url: "file:///tmp/ramdisk/postinst.sh".to_owned(),
        nic: work.config.installer_nic.clone(),
        admin: admin_interface(work.config, work.node()?),
        uefi: work.node()?.boot == Boot::Uefi,
    };
    work.system.write_atomic(
        xsinst.join("answerfile.xml"),
        render::answerfile(&answers)?.as_bytes(),
        0o600,
    )?;
    let uuid = recorded_root_uuid(work)?;
    let hook = Dom0Hook {
        ramdisk_dir: "/tmp/ramdisk".to_owned(),
        ubuntu_uuid: uuid,
        ubuntu_mount: UBUNTU_MOUNT.to_owned(),
        install_dir: work.files.install_dir.to_string_lossy().into_owned(),
    };
    work.system.write_atomic(
        xsinst.join("postinst.sh"),
        render::post_install_script(&hook).as_bytes(),
        0o755,
    )?;
    work.system.write_atomic(
        xsinst.join("xitc-dom0-boot"),
        render::dom0_boot_script(&hook).as_bytes(),
        0o755,
    )
}

/// The UUID of the root file system (the Ubuntu partition).
fn root_uuid(work: &Work<'_>) -> anyhow::Result<String> {
    let root_device = work.node()?.root_device.clone();
    let uuid = work
        .system
        .run("blkid", &["-s", "UUID", "-o", "value", &root_device])?
        .trim()
        .to_owned();
    anyhow::ensure!(!uuid.is_empty(), "blkid gave no UUID for {root_device}");
    Ok(uuid)
}

/// The shrink runs in the initramfs: where GRUB would boot without it first,
/// a drop-in sourced after Ubuntu's own (`40-force-partuuid.cfg`) empties
/// `GRUB_FORCE_PARTUUID` for the shrink boot. The grub-entry step's
/// update-grub applies it.
pub fn initrd_boot(work: &mut Work<'_>) -> anyhow::Result<()> {
    if !work.node()?.layout.initrdless_boot {
        return Ok(());
    }
    work.log.line(
        "GRUB boots without the initrd first (GRUB_FORCE_PARTUUID): off until the shrink has run",
    );
    work.system.create_dir_all("/etc/default/grub.d")?;
    work.system.write_atomic(
        INITRD_BOOT_DROP_IN,
        b"# xitc-convert: boot with the initrd, where the shrink runs; removed after it\nGRUB_FORCE_PARTUUID=\n",
        0o644,
    )
}

pub fn grub_entry(work: &mut Work<'_>) -> anyhow::Result<()> {
    let entry = InstallerEntry {
        root_uuid: recorded_root_uuid(work)?,
        files_dir: work.files.installer_dir.to_string_lossy().into_owned(),
        ramdisk_device: format!(
            "/dev/{}",
            partition_name(&work.node()?.layout.installer_disk, 2)
        ),
        answerfile_url: "file:///tmp/ramdisk/answerfile.xml".to_owned(),
        uefi: work.node()?.boot == Boot::Uefi,
    };
    work.system.write_atomic(
        "/etc/grub.d/45_xitc-installer",
        render::grub_installer_script(&entry)?.as_bytes(),
        0o755,
    )?;
    let default = work
        .system
        .read_to_string("/etc/default/grub")
        .context("reading /etc/default/grub")?;
    work.system.write_atomic(
        "/etc/default/grub",
        render::edit_default_grub(&default).as_bytes(),
        0o644,
    )?;
    work.system.run("update-grub", &[]).map(drop)
}

/// The size the initramfs shrinks the root to: what is in use now, with
/// the downloads and the installer's files (they stay on the Ubuntu side), and
/// a margin; `--ubuntu-size` when given, refused when that is too small.
pub fn shrink_target(work: &mut Work<'_>) -> anyhow::Result<()> {
    let df = work
        .system
        .run("df", &["-B1", "--output=used,avail", "/"])?;
    let (used, _) = parse_df(&df).with_context(|| format!("df printed no sizes: {df:?}"))?;
    let target = work.config.ubuntu_size.unwrap_or(used + 2 * MARGIN_BYTES);
    if used + MARGIN_BYTES > target {
        return Err(exit::usage(format!(
            "--ubuntu-size {target} bytes is too small: {used} bytes are in use on / with the downloads"
        )));
    }
    work.system.write_atomic(
        &work.files.shrink_target,
        format!("{target}\n").as_bytes(),
        0o644,
    )
}

pub fn shrink_hook(work: &mut Work<'_>) -> anyhow::Result<()> {
    let node = work.node()?.clone();
    let recorded = work
        .system
        .read_to_string(&work.files.shrink_target)
        .with_context(|| format!("reading {}", work.files.shrink_target.display()))?;
    let target = recorded.trim().parse::<u64>().with_context(|| {
        format!(
            "{} holds no size: {recorded:?}",
            work.files.shrink_target.display()
        )
    })?;
    let partition = node.root_device.clone();
    let script = render::shrink_premount_script(&Shrink {
        partition,
        disk: format!("/dev/{}", node.disk),
        target_bytes: target,
    })?;
    work.system.write_atomic(
        "/usr/share/initramfs-tools/hooks/xitc-shrink",
        render::SHRINK_HOOK.as_bytes(),
        0o755,
    )?;
    work.system.write_atomic(
        "/usr/share/initramfs-tools/scripts/local-premount/xitc-shrink",
        script.as_bytes(),
        0o755,
    )?;
    work.system.run("update-initramfs", &["-u"]).map(drop)
}
