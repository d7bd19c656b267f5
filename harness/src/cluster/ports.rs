//! Free loopback ports for the processes a test or a run starts.

use std::net::{Ipv4Addr, TcpListener};

/// Asks the kernel for a free port on 127.0.0.1. The port is released before it is returned,
/// so another process could take it first; callers start their server right away.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `count` distinct free loopback ports, all held open until every one is chosen.
pub fn free_loopback_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_loopback_ports(5).expect("ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free");
        }
    }
}
