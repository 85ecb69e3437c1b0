//! Opens idle sockets to a running service and reports what they cost it:
//! the service's resident memory (`process_resident_memory_bytes` on
//! `/metrics`) before, with every socket connected, and after they close.
//! Every socket joins `/chats` with the token of one user (the service
//! must allow that many: `MAX_SOCKETS_PER_USER`) and answers pings while
//! it waits. `make socket-memory` runs it under a heap profiler.
//!
//! ```text
//! cargo run -p e2e --example idle_sockets -- http://127.0.0.1:3000 2000 30
//! ```

use std::time::Duration;

use e2e::{engine_io::RawWebSocket, server::metric_at as metric, Api};
use tokio::time::Instant;

/// Sockets opened at once.
const AT_ONCE: usize = 50;

async fn resident_mib(base: &str) -> f64 {
    metric(base, "process_resident_memory_bytes").await / 1024.0 / 1024.0
}

/// Waits until the service counts `sockets` connected, for 60 s at most.
async fn until_connected(base: &str, sockets: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(base, "sockets_connected").await != sockets as f64 {
        assert!(
            Instant::now() < deadline,
            "sockets_connected never reached {sockets}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, count, seconds] = args.as_slice() else {
        eprintln!("usage: idle_sockets BASE_URL SOCKETS SECONDS");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("SOCKETS is a number");
    let hold = Duration::from_secs(seconds.parse().expect("SECONDS is a number"));
    let user = Api::new(base.clone()).new_user().await;
    let already = metric(base, "sockets_connected").await as usize;
    let before = resident_mib(base).await;

    let mut sockets = Vec::with_capacity(count);
    while sockets.len() < count {
        let batch = AT_ONCE.min(count - sockets.len());
        let opening = (0..batch).map(|_| RawWebSocket::connect(base, &user.token));
        sockets.extend(futures::future::join_all(opening).await);
    }
    until_connected(base, already + count).await;
    let deadline = Instant::now() + hold;
    let held: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| tokio::spawn(async move { (socket.idle_until(deadline).await, socket) }))
        .collect();
    let mut closed_early = 0;
    let mut sockets = Vec::with_capacity(count);
    for task in held {
        let (open, socket) = task.await.expect("socket task");
        closed_early += usize::from(!open);
        sockets.push(socket);
    }
    // Measured at the end of the hold: every socket connected and idle.
    let connected = resident_mib(base).await;
    drop(sockets);
    until_connected(base, already).await;
    let after = resident_mib(base).await;
    let per_socket = (connected - before) * 1024.0 / count as f64;
    println!(
        "{count} idle sockets for {hold:?}: service resident {before:.1} MiB before, \
         {connected:.1} MiB connected ({per_socket:.1} KiB per socket), {after:.1} MiB \
         after they closed; {closed_early} closed early"
    );
}
