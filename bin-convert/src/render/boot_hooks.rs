//! What starts xitc-convert at boot: the systemd unit (an upstart job on
//! systems without systemd) in Ubuntu, dom0's boot script, and the
//! installer's post-install script that installs it in the new dom0.

use std::fmt::Write as _;

/// Quotes one word of a systemd `ExecStart=` line, as systemd.service(5)
/// "Command lines" reads it: inside double quotes, C-style escapes (`\\`,
/// `\"`, `\n`, `\xHH` for other control characters); `%` is a specifier
/// everywhere (`%%` is one `%`, systemd.unit(5) "Specifiers"); and in every
/// argument but the program, `$VAR` and `${VAR}` are expanded (`$$` is one
/// `$`). The program's path is used as written: systemd expands no variable
/// there (its first word "must be a literal and absolute path"), so its `$`
/// stays single.
fn systemd_quote(text: &str, word: Word) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '%' => quoted.push_str("%%"),
            '$' if word == Word::Argument => quoted.push_str("$$"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            control if control.is_control() && u32::from(control) < 0x80 => {
                let _ = write!(quoted, "\\x{:02x}", u32::from(control));
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// Why systemd would not run a program at `path` from a unit, if it would
/// not: it refuses a program path with a backslash, a quote or a control
/// character in it ("Executable name contains special characters", seen with
/// `systemd-analyze verify`), however it is quoted. Preflight refuses such
/// an install dir before any change.
pub fn systemd_program_problem(path: &str) -> Option<String> {
    path.chars()
        .any(|character| matches!(character, '\\' | '"' | '\'') || character.is_control())
        .then(|| {
            format!(
                "the program's path {} holds a backslash, a quote or a control character, \
                 which systemd does not run from a unit: choose another --install-dir",
                xitc_common::exit::escape_control(&format!("{path:?}"))
            )
        })
}

/// Which word of a command line [`systemd_quote`] quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Program,
    Argument,
}

/// The systemd unit that runs xitc-convert on every boot, after the network is
/// up. No password in it: the run reads the saved config. A program path
/// systemd would not run is refused ([`systemd_program_problem`]).
pub fn systemd_unit(binary: &str, install_dir: &str) -> anyhow::Result<String> {
    if let Some(problem) = systemd_program_problem(binary) {
        return Err(xitc_common::exit::usage(problem));
    }
    Ok(format!(
        "[Unit]\n\
         Description=xitc-convert: continue converting this node to XenServer\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={} --install-dir {}\n\
         TimeoutStartSec=infinity\n\
         StandardOutput=journal+console\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        systemd_quote(binary, Word::Program),
        systemd_quote(install_dir, Word::Argument)
    ))
}

/// The upstart job for nodes without systemd (Ubuntu 14.04).
pub fn upstart_job(binary: &str, install_dir: &str) -> String {
    let quote = xitc_common::shell::shell_quote;
    format!(
        "description \"xitc-convert: continue converting this node to XenServer\"\n\
         start on stopped rc RUNLEVEL=[2345]\n\
         task\n\
         exec {} --install-dir {}\n",
        quote(binary),
        quote(install_dir)
    )
}

/// Where the pieces of the dom0 side are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dom0Hook {
    /// The installer's copy of `xsinst/` (`/tmp/ramdisk`).
    pub ramdisk_dir: String,
    /// UUID of the Ubuntu root file system, which dom0 mounts to run the binary.
    pub ubuntu_uuid: String,
    /// Where dom0 mounts it.
    pub ubuntu_mount: String,
    /// The install dir as Ubuntu sees it (`/opt/xenapi-in-the-cloud`).
    pub install_dir: String,
}

/// The script dom0 runs on every boot: mount the Ubuntu partition (by UUID, not
/// by a device name that differs between Ubuntu and dom0) and run xitc-convert
/// from it with its state there. No password: the saved config has all. Its
/// output goes where the hook's goes (the journal, or the console from
/// rc.local): xitc-convert writes its log file itself.
pub fn dom0_boot_script(hook: &Dom0Hook) -> String {
    let quote = xitc_common::shell::shell_quote;
    let mount = quote(&hook.ubuntu_mount);
    let install = quote(&format!(
        "{}/{}",
        hook.ubuntu_mount.trim_end_matches('/'),
        hook.install_dir.trim_start_matches('/')
    ));
    format!(
        "#!/bin/sh\n\
         # xitc-convert: continue the conversion from the Ubuntu partition.\n\
         mkdir -p {mount}\n\
         if ! mountpoint -q {mount}; then\n    \
         mount UUID={uuid} {mount} || {{ echo \"xitc-convert: cannot mount the Ubuntu partition\" >&2; exit 1; }}\n\
         fi\n\
         exec {install}/xitc-convert --install-dir {install}\n",
        uuid = quote(&hook.ubuntu_uuid),
    )
}

/// The installer's post-install script (`filesystem-populated` stage; it gets
/// the new root's mount point as `$1`; its first line must be exactly
/// `#!/bin/sh`, and its exit code is ignored, so it checks and reports itself).
/// It copies the saved cloud settings and authorized_keys into dom0 and
/// installs the dom0 boot hook: a systemd unit where dom0 has systemd
/// (XenServer 7+, XCP-ng 8), `rc.local` otherwise (XenServer 6.x).
///
/// On a UEFI install (the new ESP is still mounted at `$1/boot/efi`: the
/// script runs after the boot loader, before the installer unmounts), it makes
/// sure the firmware finds dom0's GRUB without a boot entry in NVRAM (the
/// answerfile asks for none): at the removable-media path
/// `EFI/BOOT/BOOTX64.EFI`. XCP-ng's grub-efi package installs that copy;
/// XenServer's installs only `EFI/xenserver/grubx64.efi`, built with the
/// prefix `/EFI/xenserver`, so the same image finds its grub.cfg from either
/// place.
///
/// dom0's boots must show on the serial console (the cloud's console log): the
/// default entry of dom0's GRUB must be one whose Xen writes to a serial port
/// (`console=com1,…`). host-installer makes its `xe-serial` entry the default
/// when the installer's last `console=` is serial, which xitc's installer
/// entry makes it; where an installer wrote the serial entry but left another
/// default, the script makes the serial one the default, and says so. It reads
/// the grub.cfg host-installer's boot loader code reads first (python-libs
/// `Bootloader.loadExisting`: the ESP's, then `/boot/grub`, `/boot/grub2`).
pub fn post_install_script(hook: &Dom0Hook) -> String {
    let quote = xitc_common::shell::shell_quote;
    let unit = "[Unit]\nDescription=xitc-convert: continue converting this node\n\
                After=xapi.service\n\n[Service]\nType=oneshot\n\
                ExecStart=/opt/xitc/xitc-dom0-boot\nTimeoutStartSec=infinity\n\n\
                [Install]\nWantedBy=multi-user.target\n";
    format!(
        r#"#!/bin/sh
# xitc-convert: runs in the XenServer installer after the new root is populated.
root="$1"
ramdisk={ramdisk}
log="$root/root/xitc-postinst.log"
if [ -z "$root" ] || [ ! -d "$root" ]; then
    echo "xitc postinst: no new root given" >&2
    exit 1
fi
mkdir -p "$root/root/.ssh" "$root/opt/xitc"
exec >> "$log" 2>&1
echo "xitc postinst: new root $root"
cp "$ramdisk/cloud-settings.json" "$root/root/cloud-settings.json" || echo "xitc postinst: no cloud-settings.json"
cp "$ramdisk/authorized_keys" "$root/root/.ssh/authorized_keys" || echo "xitc postinst: no authorized_keys"
chmod 0600 "$root/root/.ssh/authorized_keys" 2> /dev/null
cp "$ramdisk/xitc-dom0-boot" "$root/opt/xitc/xitc-dom0-boot" || echo "xitc postinst: no boot script"
chmod 0755 "$root/opt/xitc/xitc-dom0-boot"
esp="$root/boot/efi/EFI"
if [ -f "$esp/xenserver/grubx64.efi" ] && [ ! -e "$esp/BOOT/BOOTX64.EFI" ]; then
    if mkdir -p "$esp/BOOT" && cp "$esp/xenserver/grubx64.efi" "$esp/BOOT/BOOTX64.EFI"; then
        echo "xitc postinst: EFI/BOOT/BOOTX64.EFI added (dom0's GRUB, for a firmware without a boot entry)"
    else
        echo "xitc postinst: cannot add EFI/BOOT/BOOTX64.EFI; the firmware may not find dom0's GRUB"
    fi
fi
for cfg in "$root/boot/efi/EFI/xenserver/grub.cfg" "$root/boot/grub/grub.cfg" "$root/boot/grub2/grub.cfg"; do
    [ -f "$cfg" ] || continue
    # The default entry (an index or a title), and the first entry whose Xen
    # writes to a serial port: "ok", the index to make the default, or "none".
    serial=$(awk -v quotes="\"'" '
        /^[[:space:]]*set default=/ && default == "" {{
            default = $0; sub(/^[[:space:]]*set default=/, "", default); gsub("[" quotes "]", "", default)
        }}
        /^[[:space:]]*menuentry / {{
            entry++; title = $0; sub("^[[:space:]]*menuentry [" quotes "]", "", title); sub("[" quotes "].*", "", title)
            titles[entry - 1] = title
        }}
        /^[[:space:]]*multiboot2? / && / console=([^ ]*,)?com[0-9]/ {{ on_serial[entry - 1] = 1 }}
        END {{
            if (default == "") default = 0
            chosen = -1
            for (i = 0; i < entry; i++) if (default == i "" || default == titles[i]) chosen = i
            if (chosen >= 0 && on_serial[chosen]) {{ print "ok"; exit }}
            for (i = 0; i < entry; i++) if (on_serial[i]) {{ print i; exit }}
            print "none"
        }}' "$cfg")
    case $serial in
    ok) echo "xitc postinst: dom0's default boot entry writes to the serial console ($cfg)" ;;
    none) echo "xitc postinst: no boot entry of dom0 writes to the serial console ($cfg): dom0's boots will not show in the console log" ;;
    *)
        # The first `set default=` line replaced, or one put first.
        if grep -q '^[[:space:]]*set default=' "$cfg"; then
            awk -v serial="$serial" '!done && /^[[:space:]]*set default=/ {{ print "set default=" serial; done = 1; next }} {{ print }}' \
                "$cfg" >"$cfg.xitc"
        else
            {{ echo "set default=$serial"; cat "$cfg"; }} >"$cfg.xitc"
        fi
        if mv "$cfg.xitc" "$cfg" && grep -q "^set default=$serial\$" "$cfg"; then
            echo "xitc postinst: dom0's default boot entry is now entry $serial, which writes to the serial console ($cfg)"
        else
            echo "xitc postinst: cannot make entry $serial dom0's default boot entry ($cfg)"
        fi
        ;;
    esac
    break
done
if [ -d "$root/etc/systemd/system" ]; then
    cat > "$root/etc/systemd/system/xitc-convert.service" << 'UNIT'
{unit}UNIT
    mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
    ln -sf ../xitc-convert.service "$root/etc/systemd/system/multi-user.target.wants/xitc-convert.service"
    echo "xitc postinst: systemd unit installed"
else
    echo "/opt/xitc/xitc-dom0-boot &" >> "$root/etc/rc.d/rc.local"
    chmod +x "$root/etc/rc.d/rc.local"
    echo "xitc postinst: rc.local hook installed"
fi
"#,
        ramdisk = quote(&hook.ramdisk_dir),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// systemd's reading of one `ExecStart=` line, as systemd.service(5)
    /// "Command lines" and systemd.unit(5) "Specifiers" describe it, for
    /// what `systemd-analyze verify` cannot show (the arguments a run gets):
    /// words split at blanks outside double quotes, C escapes undone inside
    /// them, `%%` → `%`, and in arguments (not the program) `$$` → `$` with
    /// any other `$` a variable.
    fn systemd_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut characters = line.chars().peekable();
        while let Some(&first) = characters.peek() {
            if first == ' ' {
                characters.next();
                continue;
            }
            let mut word = String::new();
            let quoted = first == '"';
            if quoted {
                characters.next();
            }
            while let Some(character) = characters.next() {
                match character {
                    '"' if quoted => break,
                    ' ' if !quoted => break,
                    '\\' => match characters.next().unwrap() {
                        'n' => word.push('\n'),
                        't' => word.push('\t'),
                        'x' => {
                            let hex: String = characters.by_ref().take(2).collect();
                            word.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
                        }
                        other => word.push(other),
                    },
                    '%' => {
                        assert_eq!(characters.next(), Some('%'), "a specifier in {line}");
                        word.push('%');
                    }
                    '$' if !words.is_empty() => {
                        assert_eq!(characters.next(), Some('$'), "a variable in {line}");
                        word.push('$');
                    }
                    other => word.push(other),
                }
            }
            words.push(word);
        }
        words
    }

    #[test]
    fn exec_start_keeps_every_character_of_its_words() {
        // The program's path holds what systemd runs a program from; the
        // argument, everything.
        let dir = tempfile::tempdir().unwrap();
        let program_dir = dir.path().join("opt $HOME ${X} 100% a b");
        std::fs::create_dir_all(&program_dir).unwrap();
        let binary = program_dir.join("xitc-convert");
        std::fs::copy("/bin/true", &binary).unwrap();
        let binary = binary.to_str().unwrap();
        let install_dir = "/opt $HOME ${X} 100% \"q\" 'q' back\\slash\ttab\nline";
        let unit = systemd_unit(binary, install_dir).unwrap();
        let exec_start = unit
            .lines()
            .find_map(|line| line.strip_prefix("ExecStart="))
            .unwrap();
        assert_eq!(
            systemd_words(exec_start),
            [binary, "--install-dir", install_dir],
            "{exec_start}"
        );
        // systemd itself: it finds the program at that path (a `$` doubled
        // there, or a `%` left single, and it would not) and has nothing
        // else to say about the unit.
        let path = dir.path().join("xitc-convert.service");
        std::fs::write(&path, &unit).unwrap();
        let verified = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze (apt-get install systemd)");
        let complaints = String::from_utf8_lossy(&verified.stderr);
        assert!(
            !complaints.contains("xitc-convert.service:") && !complaints.contains("executable"),
            "systemd-analyze complains about the unit: {complaints}\n{unit}"
        );
        // The same unit with the path spelt wrongly is one it complains about:
        // the check above can fail.
        std::fs::write(
            &path,
            unit.replace("xitc-convert\" --", "xitc-convert-gone\" --"),
        )
        .unwrap();
        let verified = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&verified.stderr).contains("xitc-convert-gone"),
            "{}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }

    #[test]
    fn a_program_path_systemd_does_not_run_is_refused() {
        for path in ["/opt/a\\b/x", "/opt/a\"b/x", "/opt/a'b/x", "/opt/a\tb/x"] {
            let error = systemd_unit(path, "/opt").unwrap_err();
            assert_eq!(
                xitc_common::exit::kind_of(&error),
                xitc_common::exit::Kind::Usage
            );
            assert!(!error.to_string().contains('\t'), "{error}");
        }
    }

    #[test]
    fn boot_hooks_run_the_binary_without_a_password() {
        let unit = systemd_unit("/opt/xitc 100%/xitc-convert", "/opt/xitc 100%").unwrap();
        assert!(unit.contains(
            "ExecStart=\"/opt/xitc 100%%/xitc-convert\" --install-dir \"/opt/xitc 100%%\"\n"
        ));
        assert!(unit.contains("Type=oneshot\n") && unit.contains("After=network-online.target\n"));
        let job = upstart_job("/opt/a b/xitc-convert", "/opt/a b");
        assert!(job.contains("exec '/opt/a b/xitc-convert' --install-dir '/opt/a b'\n"));
        assert!(job.contains("start on stopped rc RUNLEVEL=[2345]\n"));
    }
}
