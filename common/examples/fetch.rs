//! `fetch DIR URL SHA256 [URL SHA256 ...]`: xitc-convert's download step on its
//! own (in parallel, resumable, checked), for bench/convert-fetch.

use std::path::Path;
use std::time::Instant;

use xitc_common::download::{Download, fetch_all};
use xitc_common::poll::Deadline;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dir, pairs)) = args.split_first() else {
        eprintln!("usage: fetch DIR URL SHA256 [URL SHA256 ...]");
        return std::process::ExitCode::from(2);
    };
    let downloads: Vec<Download> = pairs
        .chunks(2)
        .enumerate()
        .map(|(index, pair)| Download {
            url: pair[0].clone(),
            destination: Path::new(dir).join(format!("file-{index}")),
            sha256: pair.get(1).cloned(),
        })
        .collect();
    let deadline = Deadline::new(Instant::now(), None);
    let result = fetch_all(&downloads, &deadline, &|_, _, _| {});
    xitc_common::exit::report("fetch", result.map(drop))
}
