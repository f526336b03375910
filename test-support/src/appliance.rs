//! Appliance XVAs for the tests: written by `xitc_common::xva`, the one XVA
//! writer, so each is what xapi's import reads (the module says how it knows),
//! with one disk of recognisable bytes.

use std::io::{Read, Write};

use xitc_common::xva::{self, DomainType, NewVm};

/// The size of a test appliance's disk: two chunks, the last a short one.
const DISK_BYTES: u64 = xva::CHUNK_SIZE + 4096;

/// A test appliance XVA whose VM boots as `domain_type`.
pub fn appliance_xva(domain_type: DomainType) -> Vec<u8> {
    let disk: Vec<u8> = (0..DISK_BYTES).map(|at| (at % 251) as u8 + 1).collect();
    let mut out = Vec::new();
    write_appliance_xva(&mut out, domain_type, &disk[..], DISK_BYTES).expect("writing a test XVA");
    out
}

/// Writes to `out` a test appliance XVA whose VM boots as `domain_type`,
/// with `disk` (`disk_bytes` long) as its disk.
pub fn write_appliance_xva(
    out: impl Write,
    domain_type: DomainType,
    disk: impl Read,
    disk_bytes: u64,
) -> anyhow::Result<()> {
    let vm = NewVm {
        name_label: format!("test appliance ({})", domain_type.name()),
        domain_type,
        memory_bytes: 512 << 20,
        vcpus: 1,
        disk_size: disk_bytes,
    };
    xva::write_export(out, &vm, disk)
}
