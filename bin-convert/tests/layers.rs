//! Keeps bin-convert's layers true: reads the layer table in ARCHITECTURE.md
//! ("Layers of xitc-convert") and every `crate::…` path in `src/`, and fails
//! on an import from a module to one of its own layer or a higher one, on a
//! `super::` reach into a sibling file of `steps/` or `shared/`, on a module
//! the table does not list, and on a table entry with no module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module name (`steps::start`, `render`) → layer, from ARCHITECTURE.md.
fn layer_table() -> BTreeMap<String, u32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).expect("ARCHITECTURE.md at the workspace root");
    let section = text
        .split("\n## ")
        .find(|section| section.starts_with("Layers of xitc-convert"))
        .expect("ARCHITECTURE.md has a section \"Layers of xitc-convert\"");
    let mut table = BTreeMap::new();
    for row in section.lines().filter(|line| line.starts_with('|')) {
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
    assert!(table.len() > 10, "the layer table was not found: {table:?}");
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
fn module_path(src: &Path, file: &Path) -> String {
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
fn unit_of<'t>(table: &'t BTreeMap<String, u32>, module: &str) -> Option<(&'t str, u32)> {
    let mut candidate = module;
    loop {
        if let Some((name, layer)) = table.get_key_value(candidate) {
            return Some((name.as_str(), *layer));
        }
        candidate = candidate.rsplit_once("::")?.0;
    }
}

/// The module paths a line of code names after `crate::` (`crate::a::b::C`
/// → `a::b::C`; `crate::{a, b::c}` → `a`, `b::c`), comments left out.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut paths = Vec::new();
    for (index, _) in code.match_indices("crate::") {
        let rest = &code[index + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            paths.extend(group.split(',').map(|path| path.trim().to_owned()));
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            paths.push(rest[..end].trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// The longest prefix of `path` (`a::b::C`) that is a module of the crate.
fn imported_module(modules: &[String], path: &str) -> Option<String> {
    let mut candidate = path;
    loop {
        if modules.iter().any(|module| module == candidate) {
            return Some(candidate.to_owned());
        }
        candidate = candidate.rsplit_once("::")?.0;
    }
}

#[test]
fn every_import_goes_to_a_lower_layer() {
    let table = layer_table();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
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
            problems.push(format!("{module} is not in ARCHITECTURE.md's layer table"));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let place = format!("src/{}:{}", module.replace("::", "/"), number + 1);
            for path in crate_paths(line) {
                let Some(target) = imported_module(&modules, &path) else {
                    problems.push(format!("{place}: crate::{path} names no module"));
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
            // `super::x` from a file of steps/ or shared/ reaches a sibling.
            let code = line.split("//").next().unwrap_or_default();
            if let Some(folder) = module.rsplit_once("::").map(|(folder, _)| folder)
                && (folder == "steps" || folder == "shared")
                && let Some(index) = code.find("super::")
                && !code[index..].starts_with("super::*")
            {
                problems.push(format!(
                    "{place}: {module} reaches a sibling through super::; name it by crate:: \
                     (a step file never imports another)"
                ));
            }
        }
    }
    for listed in table.keys() {
        if !modules.iter().any(|module| module == listed) {
            problems.push(format!(
                "ARCHITECTURE.md lists {listed}, which is not a module of bin-convert"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_what_it_must() {
    assert_eq!(
        crate_paths("use crate::steps::start::{a, b}; // crate::ignored"),
        ["steps::start"]
    );
    assert_eq!(
        crate_paths("use crate::{log, paths::Files};"),
        ["log", "paths::Files"]
    );
    assert_eq!(crate_paths("/// see [`crate::plan`]"), Vec::<String>::new());
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
