//! Ports for the servers and proxies a test starts.

use std::{
    collections::BTreeSet,
    net::TcpListener,
    sync::{Mutex, PoisonError},
};

/// The ports this test process has handed out. A port is free only until
/// its server binds it, so two calls made before either server started
/// could otherwise get the same one: two Sentinels of one test did, and
/// the second exited with "address already in use".
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port that was free a moment ago, below Linux's ephemeral range
/// (32768 and up): a port the kernel handed out for the test's own
/// outgoing connections (Kafka, Cassandra, Redis) could be taken again by
/// another connection before the server binds it, which made a spawn fail
/// now and then with "address already in use". No port is handed out
/// twice in one process.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..1_000 {
        let port = FIRST + (uuid::Uuid::new_v4().as_u128() % u128::from(COUNT)) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT)
}
