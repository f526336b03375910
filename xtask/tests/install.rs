//! `make install-docs PREFIX=DIR` (the part of `make install` that is not
//! `cargo install`): a man page for each of the five tools that `man -l`
//! renders, with every option `--help` shows, its environment and exit
//! status; completions that bash, zsh and fish load. All real: Debian's man
//! and groff, bash, zsh and fish (scripts/install-test-deps installs them).

use std::path::Path;
use std::process::Command;

const TOOLS: [&str; 5] = [
    "xitc-print-stamp-path",
    "xitc-get-ip-address-of-instance",
    "xitc-wait-until-done",
    "xitc-convert",
    "test-rs",
];

fn run(program: &str, args: &[&str]) -> String {
    let mut command = Command::new(program);
    command.args(args).env("MANWIDTH", "200");
    xitc_test_support::stdout_of(command)
}

fn install_docs() -> tempfile::TempDir {
    let prefix = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = Command::new("make")
        .arg("-C")
        .arg(repo)
        .arg("install-docs")
        .arg(format!("PREFIX={}", prefix.path().display()))
        .status()
        .expect("make (build-essential)");
    assert!(status.success());
    prefix
}

#[test]
fn make_install_puts_man_pages_that_man_renders_and_that_agree_with_help() {
    let prefix = install_docs();
    let pages = prefix.path().join("share/man/man1");
    for (tool, command) in TOOLS.iter().zip(xtask::tools()) {
        let page = pages.join(format!("{tool}.1"));
        let rendered = run("man", &["-l", page.to_str().unwrap()]);
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS"] {
            assert!(
                rendered.lines().any(|line| line == section),
                "{tool}: no {section} in {rendered}"
            );
        }
        assert!(rendered.contains(&format!("{tool} - ")), "{rendered}");
        assert!(rendered.contains("124  a --timeout ran out"), "{rendered}");
        // Every option --help shows is on the page.
        let help = command.clone().render_long_help().to_string();
        for argument in command
            .get_arguments()
            .filter(|argument| !argument.is_hide_set())
        {
            if let Some(long) = argument.get_long() {
                assert!(help.contains(&format!("--{long}")), "{tool} --{long}");
                assert!(
                    rendered.contains(&format!("--{long}")),
                    "{tool}: --{long} is in --help but not in the man page"
                );
            }
        }
    }
    // The variables a tool reads outside its options are on its page too.
    let get_ip = run(
        "man",
        &[
            "-l",
            pages
                .join("xitc-get-ip-address-of-instance.1")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(get_ip.lines().any(|line| line == "ENVIRONMENT"), "{get_ip}");
    assert!(get_ip.contains("OS_AUTH_URL"), "{get_ip}");
}

#[test]
fn make_install_puts_completions_that_bash_zsh_and_fish_load() {
    let prefix = install_docs();
    let share = prefix.path().join("share");
    for tool in TOOLS {
        let bash = share.join(format!("bash-completion/completions/{tool}"));
        let loaded = run(
            "bash",
            &[
                "-c",
                &format!("source '{}' && complete -p {tool}", bash.display()),
            ],
        );
        assert!(loaded.trim_end().ends_with(&format!(" {tool}")), "{loaded}");
        let zsh = run(
            "zsh",
            &[
                "-f",
                "-c",
                &format!(
                    "fpath=('{}' $fpath); autoload -Uz compinit && compinit -u -D && \
                     print -r -- ${{_comps[{tool}]}}",
                    share.join("zsh/site-functions").display()
                ),
            ],
        );
        assert_eq!(zsh.trim(), format!("_{tool}"), "zsh did not load _{tool}");
        let fish = run(
            "fish",
            &[
                "--no-config",
                "-c",
                &format!(
                    "source '{}'; complete -C'{tool} --ver'",
                    share
                        .join(format!("fish/vendor_completions.d/{tool}.fish"))
                        .display()
                ),
            ],
        );
        assert!(fish.starts_with("--version"), "fish for {tool}: {fish:?}");
    }
}

#[test]
fn make_install_installs_each_tool_under_the_prefix() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let plan = run(
        "make",
        &[
            "-n",
            "-C",
            repo.to_str().unwrap(),
            "install",
            "PREFIX=/opt/xitc",
        ],
    );
    assert!(
        plan.contains("cargo install --locked --root /opt/xitc --path $crate"),
        "{plan}"
    );
    assert!(
        plan.contains("bin-print-stamp bin-get-ip bin-wait-done bin-convert test-rs"),
        "{plan}"
    );
    assert!(
        plan.contains("cargo xtask man /opt/xitc/share/man/man1"),
        "{plan}"
    );
    assert!(
        plan.contains("cargo xtask completions /opt/xitc/share"),
        "{plan}"
    );
}
