//! Build-time tasks: the man pages and shell completions of the five tools,
//! generated from the same clap definitions their `--help` comes from, so
//! they cannot disagree with it (clap's own generators, `clap_mangen` and
//! `clap_complete`).
//!
//! Why an `xtask` and not a hidden `--generate` option in each tool: the
//! tools stay free of generator code (xitc-convert's static binary is copied
//! to every node), and nothing generated is committed; `make install` and
//! the package builds run it (`cargo xtask man DIR`, `cargo xtask completions
//! DIR`).

use std::path::Path;

use anyhow::Context as _;
use clap_complete::Shell;

/// Every tool, by the name it is installed under, with its command line.
pub fn tools() -> Vec<clap::Command> {
    vec![
        bin_print_stamp::command(),
        bin_get_ip::command(),
        bin_wait_done::command(),
        bin_convert::cli::command(),
        test_rs::command(),
    ]
}

/// One page per tool, `DIR/<tool>.1`: NAME, SYNOPSIS, DESCRIPTION, OPTIONS
/// (each with the environment variable that sets it) as clap_mangen renders
/// them, then the text `--help` prints after the options as sections of
/// their own ([`after_help_sections`]: ENVIRONMENT, EXIT STATUS, NOTES),
/// its columns kept, then VERSION.
pub fn man_page(command: clap::Command) -> anyhow::Result<Vec<u8>> {
    let after_help = command
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let man = clap_mangen::Man::new(command);
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut sections = roff::Roff::new();
    for (title, lines) in after_help_sections(&after_help) {
        sections.control("SH", [title]).control("nf", []);
        for line in lines {
            sections.text([roff::roman(line)]);
        }
        sections.control("fi", []);
    }
    sections.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// The after-help text's paragraphs ("Heading:" then indented lines), each
/// under the man-page section it belongs in: "Exit status:" under EXIT
/// STATUS; environment variables ("Environment:", "Credentials, …") under
/// ENVIRONMENT, the heading kept as its first line where it says more than
/// the section's title; anything else under NOTES, likewise.
pub fn after_help_sections(text: &str) -> Vec<(&'static str, Vec<&str>)> {
    let mut sections: Vec<(&'static str, Vec<&str>)> = Vec::new();
    for paragraph in text
        .split("\n\n")
        .filter(|paragraph| !paragraph.trim().is_empty())
    {
        let mut lines: Vec<&str> = paragraph.lines().collect();
        let heading = lines.first().copied().unwrap_or_default().trim();
        let title = if heading.starts_with("Exit status") {
            "EXIT STATUS"
        } else if heading.starts_with("Environment") || heading.starts_with("Credentials") {
            "ENVIRONMENT"
        } else {
            "NOTES"
        };
        if matches!(heading, "Exit status:" | "Environment:") {
            lines.remove(0);
        }
        match sections.iter_mut().find(|(existing, _)| *existing == title) {
            Some((_, body)) => {
                body.push("");
                body.extend(lines);
            }
            None => sections.push((title, lines)),
        }
    }
    sections
}

/// One page per tool, `DIR/<tool>.1` ([`man_page`]).
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for command in tools() {
        let name = format!("{}.1", command.get_name());
        let page = man_page(command).with_context(|| format!("rendering {name}"))?;
        let path = dir.join(&name);
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(name);
    }
    Ok(written)
}

/// Where each shell looks for completions under a prefix's `share/`, and the
/// file name its loader expects there for a command NAME (bash-completion
/// loads `completions/NAME` on first use; zsh's compinit reads `_NAME` files
/// in `fpath`; fish loads `NAME.fish`).
pub const COMPLETIONS: [(Shell, &str, &str); 3] = [
    (Shell::Bash, "bash-completion/completions", "{}"),
    (Shell::Zsh, "zsh/site-functions", "_{}"),
    (Shell::Fish, "fish/vendor_completions.d", "{}.fish"),
];

/// Completions for bash, zsh and fish under `share` (a prefix's `share/`
/// directory), each in its shell's own directory and file name
/// ([`COMPLETIONS`]).
pub fn write_completions(share: &Path) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    for (shell, subdir, file_name) in COMPLETIONS {
        let dir = share.join(subdir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for mut command in tools() {
            let name = command.get_name().to_owned();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, &name, &mut script);
            let file = file_name.replace("{}", &name);
            let path = dir.join(&file);
            std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
            written.push(format!("{subdir}/{file}"));
        }
    }
    Ok(written)
}

/// `xtask man DIR` or `xtask completions SHARE_DIR`; prints what it wrote.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let written = match args {
        [task, dir] if task == "man" => write_man_pages(Path::new(dir))?,
        [task, dir] if task == "completions" => write_completions(Path::new(dir))?,
        _ => anyhow::bail!(
            "usage: cargo xtask man DIR | cargo xtask completions SHARE_DIR (e.g. PREFIX/share)"
        ),
    };
    for file in written {
        println!("{file}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_help_paragraphs_go_to_their_sections() {
        let text = "Marks, one per poll:\n  X  failed\n\nEnvironment:\n  CI  one mark per line\n\n\
                    Credentials, as the OpenStack clients read them:\n  OS_CLOUD  a cloud\n\n\
                    Exit status:\n  0    done\n  124  a --timeout ran out";
        assert_eq!(
            after_help_sections(text),
            [
                ("NOTES", vec!["Marks, one per poll:", "  X  failed"]),
                (
                    "ENVIRONMENT",
                    vec![
                        "  CI  one mark per line",
                        "",
                        "Credentials, as the OpenStack clients read them:",
                        "  OS_CLOUD  a cloud"
                    ]
                ),
                (
                    "EXIT STATUS",
                    vec!["  0    done", "  124  a --timeout ran out"]
                ),
            ]
        );
        assert!(after_help_sections("").is_empty());
    }
}
