//! The run tag and the names built from it: every namespace, link and nft table of a network
//! carries its tag, so a later run finds what a killed one left behind.
//!
//! A tag is `kc` and six random characters of `[0-9a-z]` (`kc4f0q2m`): short enough for Linux's
//! 15-character interface names, random enough (36^6) that concurrent runs never pick the same.
//!
//! | what | name | example |
//! | --- | --- | --- |
//! | bridge (root namespace) | `<tag>br` | `kc4f0q2mbr` |
//! | veth, root side, node `i` | `<tag>v<i>` | `kc4f0q2mv0` |
//! | veth, node side | `eth0` (inside the node's namespace) | |
//! | network namespace | `<tag>-<node>` | `kc4f0q2m-broker-1` |
//! | nft table (in each node's namespace) | `inet <tag>` | `inet kc4f0q2m` |

use std::fmt;

use rand::Rng;

/// Every tag starts with this.
pub const TAG_PREFIX: &str = "kc";
const RANDOM_CHARACTERS: usize = 6;
const TAG_LENGTH: usize = TAG_PREFIX.len() + RANDOM_CHARACTERS;
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Linux's limit on interface names (IFNAMSIZ less the terminating NUL).
pub const INTERFACE_NAME_MAX: usize = 15;

/// The short unique name of one network (one run).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunTag(String);

impl RunTag {
    /// A fresh random tag.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        let mut tag = String::with_capacity(TAG_LENGTH);
        tag.push_str(TAG_PREFIX);
        for _ in 0..RANDOM_CHARACTERS {
            tag.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
        }
        RunTag(tag)
    }

    /// `text` as a tag, if it has a tag's form.
    pub fn parse(text: &str) -> Option<Self> {
        let random = text.strip_prefix(TAG_PREFIX)?;
        let well_formed = random.len() == RANDOM_CHARACTERS
            && random.bytes().all(|byte| ALPHABET.contains(&byte));
        well_formed.then(|| RunTag(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bridge in the root namespace.
    pub fn bridge_name(&self) -> String {
        format!("{}br", self.0)
    }

    /// The root-side end of node `index`'s veth pair (`index` < 1000).
    pub fn veth_name(&self, index: usize) -> String {
        format!("{}v{index}", self.0)
    }

    /// The network namespace of node `node`.
    pub fn namespace_name(&self, node: &str) -> String {
        format!("{}-{node}", self.0)
    }

    /// The nft table (family `inet`) in every node's namespace.
    pub fn table_name(&self) -> &str {
        &self.0
    }

    /// The tag of a link named by [`RunTag::bridge_name`] or [`RunTag::veth_name`].
    pub fn of_link(name: &str) -> Option<Self> {
        let tag = Self::parse(name.get(..TAG_LENGTH)?)?;
        let suffix = &name[TAG_LENGTH..];
        let index = suffix.strip_prefix('v');
        let ours = suffix == "br"
            || index.is_some_and(|digits| {
                (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            });
        ours.then_some(tag)
    }

    /// The tag of a namespace named by [`RunTag::namespace_name`].
    pub fn of_namespace(name: &str) -> Option<Self> {
        let tag = Self::parse(name.get(..TAG_LENGTH)?)?;
        let node = name[TAG_LENGTH..].strip_prefix('-')?;
        (!node.is_empty()).then_some(tag)
    }
}

impl fmt::Display for RunTag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tags_have_the_form_and_differ() {
        let first = RunTag::random();
        let second = RunTag::random();
        assert_eq!(RunTag::parse(first.as_str()), Some(first.clone()));
        assert_ne!(first, second);
        assert_eq!(first.as_str().len(), TAG_LENGTH);
    }

    #[test]
    fn link_names_fit_linux_limits() {
        let tag = RunTag::random();
        assert!(tag.bridge_name().len() <= INTERFACE_NAME_MAX);
        assert!(tag.veth_name(999).len() <= INTERFACE_NAME_MAX);
    }

    #[test]
    fn names_lead_back_to_their_tag() {
        let tag = RunTag::parse("kc4f0q2m").expect("a tag");
        assert_eq!(RunTag::of_link(&tag.bridge_name()), Some(tag.clone()));
        assert_eq!(RunTag::of_link(&tag.veth_name(12)), Some(tag.clone()));
        assert_eq!(
            RunTag::of_namespace(&tag.namespace_name("broker-1")),
            Some(tag.clone())
        );
    }

    #[test]
    fn other_names_are_not_ours() {
        for link in [
            "eth0",
            "kc4f0q2m",
            "kc4f0q2mbrx",
            "kc4f0q2mv",
            "kc4f0q2mv1234",
            "kc4F0q2mbr",
            "kcp0",
            "docker0",
        ] {
            assert_eq!(RunTag::of_link(link), None, "{link}");
        }
        for namespace in ["kc4f0q2m", "kc4f0q2m-", "kc4f0q2mx-n1", "cni-1234", "kc-n1"] {
            assert_eq!(RunTag::of_namespace(namespace), None, "{namespace}");
        }
    }
}
