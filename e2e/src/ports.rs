//! Ports for the servers and proxies a test starts.

use std::net::TcpListener;

/// A port that was free a moment ago, below Linux's ephemeral range
/// (32768 and up): a port the kernel handed out for the test's own
/// outgoing connections (Kafka, Cassandra, Redis) could be taken again by
/// another connection before the server binds it, which made a spawn fail
/// now and then with "address already in use".
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    for _ in 0..1_000 {
        let port = FIRST + (uuid::Uuid::new_v4().as_u128() % u128::from(COUNT)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT)
}
