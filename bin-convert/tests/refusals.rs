//! Every refusal START has, wherever it is found (preflight, the ISO once it
//! is downloaded, the space once the downloads are on the disk), leaves the
//! node as it was: the whole sandbox root is compared before and after, but
//! for START's log and lock (README "The lifecycle"). Before the fix the
//! installer's refusal left the boot unit behind, and a too small
//! `--ubuntu-size` left GRUB's entry and the saved config (which a rerun with
//! a corrected size would then have used instead of its arguments).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bin_convert::state::State;

mod world;
use world::*;

/// How a case changes the node, or the run, from one START would convert.
type Change = fn(&mut StartWorld);

/// A refused run: exit 2 (usage), `reason` in the error, and every file of
/// the root as it was but for the log and the lock.
fn assert_refused_without_a_trace(what: &str, world: &StartWorld, reason: &str) {
    let console = world.sandbox.root.path().join("dev/ttyS0");
    write(&console, "");
    let before = relevant(&world.sandbox.tree());
    let error =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
            .expect_err(what);
    assert_eq!(
        xitc_common::exit::kind_of(&error),
        xitc_common::exit::Kind::Usage,
        "{what}: {error:#}"
    );
    assert!(format!("{error:#}").contains(reason), "{what}: {error:#}");
    let after = relevant(&world.sandbox.tree());
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .map(|path| path.display().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(changed.is_empty(), "{what}: changed {changed:?}");
    let commands =
        std::fs::read_to_string(world.sandbox.root.path().join("commands.log")).unwrap_or_default();
    for changing in ["update-grub", "update-initramfs", "grub-reboot", "reboot"] {
        assert!(
            !commands.contains(changing),
            "{what}: ran {changing}: {commands}"
        );
    }
    let log = run_log(world);
    assert!(log.contains("refused before any change"), "{what}: {log}");
    // The console says which step refused, and why, in one phase line.
    let failed = std::fs::read_to_string(&console)
        .unwrap()
        .lines()
        .filter_map(xitc_common::phase::Phase::find)
        .find(|phase| phase.event == xitc_common::phase::Event::Failed)
        .unwrap_or_else(|| panic!("{what}: no FAILED phase line on the console"));
    assert_eq!(failed.state, "START", "{what}");
    assert!(failed.detail.unwrap().contains(reason), "{what}");
}

/// The tree without START's log and lock, the stand-ins' own record of the
/// programs run and the console (each checked on its own).
fn relevant(tree: &BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<PathBuf, Vec<u8>> {
    tree.iter()
        .filter(|(path, _)| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            // The console is a device, not the node's disk: what it shows
            // is checked on its own.
            !matches!(
                name,
                "xitc-convert.log" | "xitc-convert.lock" | "commands.log" | "ttyS0"
            )
        })
        .map(|(path, bytes)| (path.clone(), bytes.clone()))
        .collect()
}

#[test]
#[allow(clippy::too_many_lines)] // one table of cases
fn every_refusal_of_start_leaves_the_node_as_it_was() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    // An installer without a virtio driver (XenServer 6.2), beside the usual one.
    serve_iso(
        &nginx,
        scratch.path(),
        "xenserver-6.2.iso",
        "XenServer",
        "6.2.0",
    );

    let cases: [(&str, Change, &str); 9] = [
        (
            "XCP-ng 8.3 for the appliance on a node without vmx/svm (found once the ISO is read)",
            |world| {
                assert_eq!(world.config.mode, bin_convert::config::Mode::Appliance);
                write(
                    &world.sandbox.root.path().join("proc/cpuinfo"),
                    "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse2 hypervisor\n",
                );
            },
            "XCP-ng 8.3.0 runs no PV guest",
        ),
        (
            "XenServer 6.2 on a virtio disk (found once the ISO is read)",
            |world| {
                world.config.iso_url = world
                    .config
                    .iso_url
                    .replace("installer.iso", "xenserver-6.2.iso");
                world.config.iso_sha256 = None;
            },
            "has no virtio driver and cannot see this node's disk",
        ),
        (
            "an --ubuntu-size too small for the downloads (found once they are on the disk)",
            |world| world.config.ubuntu_size = Some(1 << 20),
            "is too small",
        ),
        (
            "no default route (preflight)",
            |world| {
                write(
                    &world.sandbox.root.path().join("proc/net/route"),
                    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n",
                );
            },
            "there is no default route",
        ),
        (
            "lsblk fails (preflight)",
            |world| {
                script(
                    &world.bin.join("lsblk"),
                    "echo 'lsblk: cannot open' >&2; exit 32",
                );
            },
            "lsblk -rno NAME,UUID,PARTUUID,LABEL,FSTYPE /dev/vda failed",
        ),
        (
            "lsblk lists no partition (preflight)",
            |world| {
                write(&world.sandbox.root.path().join("lsblk.out"), "vda\n");
            },
            "did not list vda1, vda14, vda15",
        ),
        (
            "an /etc/fstab that cannot be read (preflight)",
            |world| {
                let fstab = world.sandbox.root.path().join("etc/fstab");
                std::fs::remove_file(&fstab).unwrap();
                std::fs::create_dir(&fstab).unwrap();
            },
            "reading /etc/fstab",
        ),
        (
            "a GRUB drop-in that cannot be read as text (preflight)",
            |world| {
                let drop_in = world
                    .sandbox
                    .root
                    .path()
                    .join("etc/default/grub.d/50-cloudimg-settings.cfg");
                std::fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
                std::fs::write(drop_in, b"GRUB_FORCE_PARTUUID=\xff\xfe\n").unwrap();
            },
            "reading /etc/default/grub.d/50-cloudimg-settings.cfg",
        ),
        (
            "an install dir systemd cannot start a program from (preflight)",
            |world| {
                let dir = PathBuf::from("/opt/xitc \"it's\"");
                std::fs::create_dir_all(
                    world
                        .sandbox
                        .root
                        .path()
                        .join(dir.strip_prefix("/").unwrap()),
                )
                .unwrap();
                world.files = bin_convert::paths::Files::new(dir);
            },
            "which systemd does not run from a unit",
        ),
    ];
    for (what, change, reason) in cases {
        let mut world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
            cloud_image_fixture(sandbox, CloudImage::Jammy, false)
        });
        change(&mut world);
        assert_refused_without_a_trace(what, &world, reason);
    }
}

#[test]
fn a_refusal_removes_what_an_earlier_run_left_and_the_cause_removed_start_goes_through() {
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    // A refusal after an earlier refused run's downloads: they go too, and
    // the saved config of no run is left to override the next one's
    // arguments.
    let mut world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
        cloud_image_fixture(sandbox, CloudImage::Jammy, false)
    });
    world.config.ubuntu_size = Some(1 << 20);
    let install = world
        .sandbox
        .root
        .path()
        .join(world.files.install_dir.strip_prefix("/").unwrap());
    std::fs::write(install.join("xenserver.iso.part"), b"half").unwrap();
    std::fs::write(install.join("xitc-convert.ubuntu-boot"), b"{}").unwrap();
    let _ =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
            .unwrap_err();
    for gone in [
        "xenserver.iso",
        "xenserver.iso.part",
        "appliance.xva",
        "installer",
        "xitc-convert.config",
        "xitc-convert.ubuntu-boot",
        "xitc-convert.shrink-target",
    ] {
        assert!(!install.join(gone).exists(), "{gone} was left");
    }
    assert!(!Path::new(&install.join("xitc-convert.state")).exists());

    // A run past its checks that was cut short left its boot hook and saved
    // config: a refusal now keeps them (the hook's next run needs the
    // config), and removes only what the checks make.
    let unit = world
        .sandbox
        .root
        .path()
        .join("etc/systemd/system/xitc-convert.service");
    write(&unit, "[Unit]\n");
    std::fs::write(install.join("xitc-convert.ubuntu-boot"), b"{}").unwrap();
    let _ =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
            .unwrap_err();
    assert!(install.join("xitc-convert.ubuntu-boot").exists());
    assert!(!install.join("xenserver.iso").exists() && !install.join("installer").exists());
    std::fs::remove_file(&unit).unwrap();
    std::fs::remove_file(install.join("xitc-convert.ubuntu-boot")).unwrap();

    // And with the cause removed, START goes through on the same node.
    world.config.ubuntu_size = None;
    if let Err(error) =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
    {
        panic!("START after the refusal: {error:#}");
    }
}

/// The appliance XVA is read once it is downloaded (START's `appliance`
/// step, `common::xva`): one xapi's import would refuse, or whose VM could
/// not start on the installer and node, is refused the same way, nothing
/// changed; one that can start goes through.
#[test]
fn appliances_that_cannot_be_imported_or_started_are_refused() {
    use xitc_common::xva::DomainType;
    let nginx = xitc_test_support::Nginx::start();
    let scratch = tempfile::tempdir().unwrap();
    let (iso, xva) = serve_installer(&nginx, scratch.path());
    serve_iso(&nginx, scratch.path(), "xcp-ng-8.2.iso", "XCP-ng", "8.2.1");
    let pv = xitc_test_support::appliance_xva(DomainType::Pv);
    std::fs::write(nginx.root().join("pv.xva"), &pv).unwrap();
    serve_damaged(&nginx, &xva);
    let cases: [(&str, &str, Change, &str); 5] = [
        (
            "a PV appliance on XCP-ng 8.3",
            "pv.xva",
            |_| {},
            "is a pv VM, and XCP-ng 8.3.0 runs no PV guest",
        ),
        (
            "an HVM appliance on a node without vmx/svm (XCP-ng 8.2)",
            "appliance.xva",
            |world| {
                on_8_2(world);
                no_vmx(world);
            },
            "is a hvm VM, which xapi starts only where the host has hardware virtualization (VM_HVM_REQUIRED)",
        ),
        (
            "a truncated XVA",
            "truncated.xva",
            |_| {},
            "the appliance XVA cannot be imported: ",
        ),
        (
            "an XVA without its last chunk",
            "missing-chunk.xva",
            |_| {},
            "a chunk is missing",
        ),
        (
            "an XVA whose ova.xml is huge",
            "huge.xva",
            |_| {},
            "more than the 16 MiB read",
        ),
    ];
    for (what, file, change, reason) in cases {
        let mut world = StartWorld::on(&nginx, &iso, &xva, |sandbox| {
            cloud_image_fixture(sandbox, CloudImage::Jammy, false)
        });
        world.config.appliance_url = world.config.appliance_url.replace("appliance.xva", file);
        world.config.appliance_sha256 = None;
        change(&mut world);
        assert_refused_without_a_trace(what, &world, reason);
    }

    // A PV appliance where PV guests run (XCP-ng 8.2), without vmx: it can start.
    let mut world = StartWorld::on(&nginx, &iso, &pv, |sandbox| {
        cloud_image_fixture(sandbox, CloudImage::Jammy, false)
    });
    world.config.appliance_url = world
        .config
        .appliance_url
        .replace("appliance.xva", "pv.xva");
    on_8_2(&mut world);
    no_vmx(&mut world);
    if let Err(error) =
        bin_convert::runner::run_state(&world.system, &world.files, &world.config, State::Start)
    {
        panic!("START with a PV appliance on XCP-ng 8.2: {error:#}");
    }
    let log = run_log(&world);
    assert!(
        log.contains("appliance: \"test appliance (pv)\", a pv VM, 1 disk(s) of 1052672 bytes, export version 2; its chunks and checksums are sound"),
        "{log}"
    );
}

/// The node shows no vmx or svm.
fn no_vmx(world: &mut StartWorld) {
    write(
        &world.sandbox.root.path().join("proc/cpuinfo"),
        "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse2 hypervisor\n",
    );
}

/// The installer is XCP-ng 8.2 (PV and HVM guests).
fn on_8_2(world: &mut StartWorld) {
    world.config.iso_url = world
        .config
        .iso_url
        .replace("installer.iso", "xcp-ng-8.2.iso");
    world.config.iso_sha256 = None;
}

/// Serves three damaged copies of `xva`: `truncated.xva`, `missing-chunk.xva`
/// (without its last chunk and checksum, the tar whole), `huge.xva` (an
/// `ova.xml` whose header claims 64 MiB).
fn serve_damaged(nginx: &xitc_test_support::Nginx, xva: &[u8]) {
    std::fs::write(nginx.root().join("truncated.xva"), &xva[..xva.len() - 5000]).unwrap();
    // Without its last chunk (and checksum) but with the tar's end.
    let mut archive = tar::Archive::new(xva);
    let mut cut = tar::Builder::new(Vec::new());
    for member in archive.entries().unwrap().map(Result::unwrap) {
        let mut header = member.header().clone();
        let name = member.path().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("Ref:2/00000001") {
            cut.append_data(&mut header, name, member).unwrap();
        }
    }
    std::fs::write(
        nginx.root().join("missing-chunk.xva"),
        cut.into_inner().unwrap(),
    )
    .unwrap();
    // An ova.xml whose header claims 64 MiB.
    let mut huge = tar::Header::new_ustar();
    huge.set_path("ova.xml").unwrap();
    huge.set_size(64 << 20);
    huge.set_cksum();
    let mut huge = huge.as_bytes().to_vec();
    huge.extend(vec![b' '; 100_000]);
    std::fs::write(nginx.root().join("huge.xva"), &huge).unwrap();
}

/// Serves an installer ISO named `file` whose `.treeinfo` names `family`
/// `version`.
fn serve_iso(
    nginx: &xitc_test_support::Nginx,
    scratch: &Path,
    file: &str,
    family: &str,
    version: &str,
) {
    let iso = installer_iso_of(
        &scratch.join(file),
        &format!("[general]\nfamily = {family}\nversion = {version}\n"),
    );
    std::fs::write(nginx.root().join(file), iso).unwrap();
}

/// xitc-convert's log on the node.
fn run_log(world: &StartWorld) -> String {
    let path = world.files.log.strip_prefix("/").unwrap();
    std::fs::read_to_string(world.sandbox.root.path().join(path)).unwrap()
}
