//! The layer rule of the workspace's crates, checked: ARCHITECTURE.md has a
//! table per crate ("Layers of xitc-convert", "Layers of xitc-common",
//! "Layers of test-rs") that puts every module in a layer (1 at the top);
//! [`problems`] reads it and every `crate::…` and top-level `super::…` path
//! in the crate's `src/`, and names each import from a module to one of its
//! own layer or a higher one (so no circle can form), each import of an item
//! of the crate root (the root is above every module), each module the table
//! does not list, and each table entry with no module. Test modules (after a
//! file's first `#[cfg(test)]`) import what they test and are not checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one crate's check needs: its `src/`, its table's section in
/// ARCHITECTURE.md, and the folders whose files may not reach each other
/// through `super::` (bin-convert's `steps` and `shared`: one state's steps
/// never use another's).
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a> {
    pub crate_dir: &'a Path,
    pub section: &'a str,
    pub files_apart_in: &'a [&'a str],
}

/// Module name (`steps::start`, `render`) → layer, from ARCHITECTURE.md's
/// section `section`.
pub fn layer_table(section: &str) -> BTreeMap<String, u32> {
    let path = crate::workspace_root().join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).expect("ARCHITECTURE.md at the workspace root");
    let body = text
        .split("\n## ")
        .find(|body| body.starts_with(section))
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section {section:?}"));
    let mut table = BTreeMap::new();
    for row in body.lines().filter(|line| line.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|cell| cell.parse::<u32>().ok()) else {
            continue; // the header and its rule
        };
        for module in cells[2].split(',') {
            let module = module.trim().trim_matches('`');
            assert!(
                !module.is_empty(),
                "an empty module in layer {layer}: {row}"
            );
            let before = table.insert(module.to_owned(), layer);
            assert!(before.is_none(), "{module} is listed twice");
        }
    }
    assert!(
        table.len() > 3,
        "{section}: no layer table found: {table:?}"
    );
    table
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `steps/start.rs` → `steps::start`, `render/mod.rs` → `render`.
pub fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The table's unit that `module` belongs to: itself, or the folder module
/// that holds it (`render::grub` → `render`).
pub fn unit_of<'t>(table: &'t BTreeMap<String, u32>, module: &str) -> Option<(&'t str, u32)> {
    let mut candidate = module;
    loop {
        if let Some((name, layer)) = table.get_key_value(candidate) {
            return Some((name.as_str(), *layer));
        }
        candidate = candidate.rsplit_once("::")?.0;
    }
}

/// The module paths a line of code names after `crate::` (`crate::a::b::C`
/// → `a::b::C`; `crate::{a, b::c}` → `a`, `b::c`), and after `super::`
/// (resolved against `parent`, the module above the file's), comments left
/// out.
pub fn imported_paths(line: &str, parent: Option<&str>) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut paths = Vec::new();
    let mut take = |prefix: &str, base: Option<&str>| {
        for (index, _) in code.match_indices(prefix) {
            // `crate::` inside `super::crate::`? not Rust; but `xitc_crate::` is
            // another crate's path: a prefix must start a path.
            let before = code[..index].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[index + prefix.len()..];
            let join = |path: &str| match base {
                Some(base) if !base.is_empty() => format!("{base}::{path}"),
                _ => path.to_owned(),
            };
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or_default();
                paths.extend(group.split(',').map(|path| join(path.trim())));
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                paths.push(join(rest[..end].trim_end_matches(':')));
            }
        }
    };
    take("crate::", None);
    if let Some(parent) = parent {
        take("super::", Some(parent));
    }
    paths
}

/// The longest prefix of `path` (`a::b::C`) that is a module of the crate.
pub fn imported_module(modules: &[String], path: &str) -> Option<String> {
    let mut candidate = path;
    loop {
        if modules.iter().any(|module| module == candidate) {
            return Some(candidate.to_owned());
        }
        candidate = candidate.rsplit_once("::")?.0;
    }
}

/// Every break of the rule in the crate `rule` names; empty when it keeps it.
pub fn problems(rule: Rule<'_>) -> Vec<String> {
    let table = layer_table(rule.section);
    let src = rule.crate_dir.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let modules: Vec<String> = files.iter().map(|file| module_path(&src, file)).collect();
    let mut problems = Vec::new();
    for (file, module) in files.iter().zip(&modules) {
        // The crate root declares the modules and re-exports; main calls run.
        if module == "lib" || module == "main" {
            continue;
        }
        let Some((unit, layer)) = unit_of(&table, module) else {
            problems.push(format!(
                "{module} is not in ARCHITECTURE.md's table \"{}\"",
                rule.section
            ));
            continue;
        };
        // `super::` at a file's top level is the module above it; a
        // `mod.rs` is its folder's module, whose parent is one more up.
        let parent = module.rsplit_once("::").map(|(parent, _)| parent);
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text
            .lines()
            .enumerate()
            .take_while(|(_, line)| !line.trim_start().starts_with("#[cfg(test)]"))
        {
            let place = format!("src/{}:{}", module.replace("::", "/"), number + 1);
            let top_level_super = parent.or(Some(""));
            for path in imported_paths(line, top_level_super) {
                let Some(target) = imported_module(&modules, &path) else {
                    problems.push(format!(
                        "{place}: {path} is the crate root's; modules import only lower layers, \
                         and the root is above them all"
                    ));
                    continue;
                };
                let Some((target_unit, target_layer)) = unit_of(&table, &target) else {
                    continue; // reported once, for the module itself
                };
                if target_unit != unit && target_layer <= layer {
                    problems.push(format!(
                        "{place}: {unit} (layer {layer}) imports {target_unit} (layer \
                         {target_layer}); a module imports only lower layers"
                    ));
                }
            }
            let code = line.split("//").next().unwrap_or_default();
            if let Some(folder) = parent
                && rule.files_apart_in.contains(&folder)
                && let Some(index) = code.find("super::")
                && !code[index..].starts_with("super::*")
            {
                problems.push(format!(
                    "{place}: {module} reaches a sibling through super::; name it by crate:: \
                     (a file of {folder}/ never imports another)"
                ));
            }
        }
    }
    for listed in table.keys() {
        if !modules.iter().any(|module| module == listed) {
            problems.push(format!(
                "ARCHITECTURE.md's table \"{}\" lists {listed}, which is not a module",
                rule.section
            ));
        }
    }
    problems
}

/// Fails the test with every break of the rule, one a line.
pub fn assert_kept(rule: Rule<'_>) {
    let problems = problems(rule);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_sees_what_it_must() {
        assert_eq!(
            imported_paths("use crate::steps::start::{a, b}; // crate::ignored", None),
            ["steps::start"]
        );
        assert_eq!(
            imported_paths("use crate::{log, paths::Files};", None),
            ["log", "paths::Files"]
        );
        assert_eq!(
            imported_paths("/// see [`crate::plan`]", None),
            Vec::<String>::new()
        );
        assert_eq!(
            imported_paths("use super::config::{Env, Settings};", Some("cloud")),
            ["cloud::config"]
        );
        assert_eq!(
            imported_paths("use super::{Failure, Target};", Some("ssh")),
            ["ssh::Failure", "ssh::Target"]
        );
        assert_eq!(
            imported_paths("use xitc_crate::x; let a = b.super_::c;", Some("p")),
            Vec::<String>::new()
        );
        let modules = vec!["render".to_owned(), "render::grub".to_owned()];
        assert_eq!(
            imported_module(&modules, "render::grub::INSTALLER_ENTRY").as_deref(),
            Some("render::grub")
        );
        assert_eq!(imported_module(&modules, "nothing::here"), None);
        let table = BTreeMap::from([("render".to_owned(), 8), ("steps::start".to_owned(), 5)]);
        assert_eq!(unit_of(&table, "render::grub"), Some(("render", 8)));
        assert_eq!(unit_of(&table, "steps::ubuntu"), None);
    }
}
