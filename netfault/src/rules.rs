//! The nftables rules of a grudge, as scripts for `nft -f`. Pure: text in, text out.
//!
//! Each node's namespace has one table, `inet <tag>`, created with the network:
//!
//! ```text
//! table inet kc4f0q2m {
//!     chain input {
//!         type filter hook input priority filter; policy accept;
//!         ct state invalid counter
//!         jump grudge
//!     }
//!     chain grudge {
//!         ip saddr { 198.18.5.3, 198.18.5.4 } drop
//!         ip saddr { 198.18.5.5 } ct direction original drop
//!     }
//! }
//! ```
//!
//! The `grudge` chain holds what this node drops, on input, as Jepsen's `iptables -A INPUT -s
//! <src> -j DROP` does: a sender it drops mutually loses every packet (SYN-ACKs too, so TCP fails
//! both ways); a sender it drops one-way loses only packets in the *original* direction of a
//! connection (the ones the sender's own connections send), so the replies to this node's
//! connections still arrive. The `ct state` rule does nothing but keep connection tracking on in
//! the namespace from the start, so that connections opened before a one-way grudge have their
//! direction known. Applying a grudge replaces the chain's rules in one transaction; healing
//! empties it.
//!
//! Why per-node input rules and not one bridge-family table in the root namespace: the bridge
//! family has no connection tracking here (Linux 6.18 without `nf_conntrack_bridge`: `ct`
//! expressions fail with "Protocol error"), and filtering bridged traffic from the `inet` family
//! depends on `br_netfilter` and a host-wide sysctl. Inside a node's namespace, input rules and
//! conntrack work on any kernel with namespaces, the table goes with the namespace, and the model
//! is Jepsen's own.

use std::fmt::Write;
use std::net::Ipv4Addr;

/// The chain that holds a node's grudge.
pub const GRUDGE_CHAIN: &str = "grudge";

/// The table a node's namespace gets when the network is created.
pub fn base_table(table: &str) -> String {
    format!(
        "table inet {table} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tct state invalid counter comment \"keeps connection tracking on\"\n\
         \t\tjump {GRUDGE_CHAIN}\n\
         \t}}\n\
         \tchain {GRUDGE_CHAIN} {{\n\
         \t}}\n\
         }}\n"
    )
}

/// Replaces a node's grudge: drops everything from `mutual`, and from `one_way` everything but
/// replies to the node's own connections. Both empty: a heal.
pub fn grudge_script(table: &str, mutual: &[Ipv4Addr], one_way: &[Ipv4Addr]) -> String {
    let mut script = format!("flush chain inet {table} {GRUDGE_CHAIN}\n");
    if !mutual.is_empty() {
        let _ = writeln!(
            script,
            "add rule inet {table} {GRUDGE_CHAIN} ip saddr {{ {} }} drop",
            address_list(mutual)
        );
    }
    if !one_way.is_empty() {
        let _ = writeln!(
            script,
            "add rule inet {table} {GRUDGE_CHAIN} ip saddr {{ {} }} ct direction original drop",
            address_list(one_way)
        );
    }
    script
}

fn address_list(addresses: &[Ipv4Addr]) -> String {
    addresses
        .iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heal_only_flushes() {
        assert_eq!(
            grudge_script("kc4f0q2m", &[], &[]),
            "flush chain inet kc4f0q2m grudge\n"
        );
    }

    #[test]
    fn mutual_and_one_way_senders_get_their_own_rule() {
        let script = grudge_script(
            "kc4f0q2m",
            &[Ipv4Addr::new(198, 18, 5, 3), Ipv4Addr::new(198, 18, 5, 4)],
            &[Ipv4Addr::new(198, 18, 5, 5)],
        );
        assert_eq!(
            script,
            "flush chain inet kc4f0q2m grudge\n\
             add rule inet kc4f0q2m grudge ip saddr { 198.18.5.3, 198.18.5.4 } drop\n\
             add rule inet kc4f0q2m grudge ip saddr { 198.18.5.5 } ct direction original drop\n"
        );
    }

    #[test]
    fn the_base_table_jumps_to_the_grudge_chain() {
        let table = base_table("kc4f0q2m");
        assert!(table.starts_with("table inet kc4f0q2m {"));
        assert!(table.contains("hook input"));
        assert!(table.contains("jump grudge"));
        assert!(table.contains("chain grudge {"));
    }
}
