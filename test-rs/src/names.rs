//! The names a run uses, all derived from VM_POSTFIX as in 2014.

use xitc_common::exit;

/// Longest postfix: server names stay well inside every cloud's limit.
const MAX_POSTFIX: usize = 48;

/// The names a run uses, all derived from the postfix as in 2014.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub test_server: String,
    pub snapshot_server: String,
    pub image: String,
    pub keypair: String,
}

impl Names {
    /// Names for `postfix`, which must be 1–48 letters, digits, `-` or `_` (what
    /// every cloud accepts in server, image and keypair names).
    pub fn new(postfix: &str) -> anyhow::Result<Self> {
        if postfix.is_empty() {
            return Err(exit::usage("VM_POSTFIX is empty"));
        }
        if postfix.len() > MAX_POSTFIX {
            return Err(exit::usage(format!(
                "VM_POSTFIX is longer than {MAX_POSTFIX} characters"
            )));
        }
        if let Some(bad) = postfix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(exit::usage(format!(
                "VM_POSTFIX {postfix:?} has {bad:?}; use letters, digits, - and _"
            )));
        }
        Ok(Names {
            test_server: format!("Jxitct{postfix}"),
            snapshot_server: format!("Jxitcs{postfix}"),
            image: format!("Jxitci{postfix}"),
            keypair: format!("Jxitck{postfix}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xitc_common::exit::{Kind, kind_of};

    #[test]
    fn names_follow_the_2014_scheme() {
        let names = Names::new("42-a_b").unwrap();
        assert_eq!(names.test_server, "Jxitct42-a_b");
        assert_eq!(names.snapshot_server, "Jxitcs42-a_b");
        assert_eq!(names.image, "Jxitci42-a_b");
        assert_eq!(names.keypair, "Jxitck42-a_b");
    }

    #[test]
    fn bad_postfixes_are_usage_errors() {
        for bad in ["", "a b", "x/y", "ü", "semi;colon", &"x".repeat(49)] {
            let error = Names::new(bad).unwrap_err();
            assert_eq!(kind_of(&error), Kind::Usage, "{bad:?}");
        }
    }
}
