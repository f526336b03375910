//! `test-xva OUT [hvm|pv]`: writes a test appliance XVA (test-support's
//! `appliance_xva`) to OUT, for the real-VM test (`tests/vm/convert-node`).

use xitc_common::xva::DomainType;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, domain_type) = match args.as_slice() {
        [out] => (out, DomainType::Hvm),
        [out, kind] if kind == "hvm" => (out, DomainType::Hvm),
        [out, kind] if kind == "pv" => (out, DomainType::Pv),
        _ => {
            eprintln!("usage: test-xva OUT [hvm|pv]");
            std::process::exit(2);
        }
    };
    if let Err(error) = std::fs::write(out, xitc_test_support::appliance_xva(domain_type)) {
        eprintln!("test-xva: writing {out}: {error}");
        std::process::exit(1);
    }
}
