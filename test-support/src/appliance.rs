//! Appliance XVAs for the tests: written by `xitc_common::xva`, the one XVA
//! writer, so each is what xapi's import reads (the module says how it knows),
//! with one small disk of recognisable bytes.

use xitc_common::xva::{self, DomainType, NewVm};

/// The size of a test appliance's disk: two chunks, the last a short one.
pub const DISK_BYTES: u64 = xva::CHUNK_SIZE + 4096;

/// A test appliance XVA whose VM boots as `domain_type`.
pub fn appliance_xva(domain_type: DomainType) -> Vec<u8> {
    let disk: Vec<u8> = (0..DISK_BYTES).map(|at| (at % 251) as u8 + 1).collect();
    let vm = NewVm {
        name_label: format!("test appliance ({})", domain_type.name()),
        domain_type,
        memory_bytes: 512 << 20,
        vcpus: 1,
        disk_size: DISK_BYTES,
    };
    let mut out = Vec::new();
    xva::write_export(&mut out, &vm, &disk[..]).expect("writing a test XVA");
    out
}
