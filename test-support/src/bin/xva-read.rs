//! `xva-read FILE`: reads an XVA whole as START's `appliance` step does
//! (`xitc_common::xva::read_export`) and prints what it found, for
//! `bench/xva-read`. Exit 1 with the reason on a damaged one.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: xva-read FILE");
        std::process::exit(2);
    };
    let read = std::fs::File::open(&path)
        .map_err(anyhow::Error::from)
        .and_then(xitc_common::xva::read_export);
    match read {
        Ok(export) => println!(
            "{:?}: a {} VM, {} disk(s) of {} bytes",
            export.vm.name_label,
            export.vm.domain_type.name(),
            export.disks.len(),
            export
                .disks
                .iter()
                .map(|disk| disk.virtual_size)
                .sum::<u64>()
        ),
        Err(error) => {
            eprintln!("xva-read: {path}: {error:#}");
            std::process::exit(1);
        }
    }
}
