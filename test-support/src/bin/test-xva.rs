//! `test-xva OUT [hvm|pv] [DISK_MIB]`: writes a test appliance XVA to OUT:
//! test-support's `appliance_xva`, or with DISK_MIB a disk of that many MiB
//! of non-zero bytes (every chunk written), for `bench/xva-read`. Used by the
//! real-VM test (`tests/vm/convert-node`).

use xitc_common::xva::DomainType;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, kind, mib) = match args.as_slice() {
        [out] => (out, "hvm", None),
        [out, kind] => (out, kind.as_str(), None),
        [out, kind, mib] => (out, kind.as_str(), mib.parse::<u64>().ok()),
        _ => usage(),
    };
    let domain_type = match kind {
        "hvm" => DomainType::Hvm,
        "pv" => DomainType::Pv,
        _ => usage(),
    };
    if args.len() == 3 && mib.is_none() {
        usage();
    }
    let written = match mib {
        None => std::fs::write(out, xitc_test_support::appliance_xva(domain_type))
            .map_err(anyhow::Error::from),
        Some(mib) => std::fs::File::create(out)
            .map_err(anyhow::Error::from)
            .and_then(|file| {
                // Non-zero bytes: every chunk is written.
                let disk = std::io::Read::take(std::io::repeat(7), mib << 20);
                xitc_test_support::write_appliance_xva(
                    std::io::BufWriter::new(file),
                    domain_type,
                    disk,
                    mib << 20,
                )
            }),
    };
    if let Err(error) = written {
        eprintln!("test-xva: writing {out}: {error:#}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!("usage: test-xva OUT [hvm|pv] [DISK_MIB]");
    std::process::exit(2);
}
