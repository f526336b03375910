//! Digests as lower-case hex, the way `sha256sum` prints them and xapi writes
//! an XVA chunk's `.checksum`: the downloads' SHA-256 and the XVA's SHA-1.

use std::fmt::Write as _;

/// `bytes` as lower-case hex, two digits each.
pub fn lower(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_lower_case_digits_a_byte() {
        assert_eq!(super::lower(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(super::lower(&[]), "");
    }
}
