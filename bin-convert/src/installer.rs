//! Installer generations: what differs between the XenServer / XCP-ng
//! installers xitc-convert drives, as found on the ISO ([`crate::iso`]).

/// Which installer reads the answerfile: XenServer 6.x or 7+ / XCP-ng 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// XenServer 6.x: `srtype`, `<ip>`/`<subnet-mask>`, extlinux.
    XenServer6,
    /// XenServer 7+ and XCP-ng 8: `sr-type`, `<ipaddr>`/`<subnet>`, grub2.
    XenServer7,
}
