//! A TCP proxy in front of a server that a test can cut, as a dropped
//! network does: every open connection is closed at once and new ones are
//! closed as soon as they are accepted, until the proxy is restored.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// A proxy from a free local port to `target`. Stopped when dropped.
pub struct CuttableProxy {
    port: u16,
    online: Arc<AtomicBool>,
    /// Bumped on each cut: every forwarding task watches it.
    cuts: watch::Sender<u64>,
    accepting: JoinHandle<()>,
}

impl CuttableProxy {
    /// Listens on a free port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", crate::ports::free_port()))
            .await
            .expect("proxy cannot listen");
        let port = listener.local_addr().expect("proxy address").port();
        let online = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0);
        let accepting = tokio::spawn(accept(listener, target, online.clone(), cuts.clone()));
        Self {
            port,
            online,
            cuts,
            accepting,
        }
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The proxy's base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes every connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.online.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|cuts| *cuts += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.online.store(true, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    online: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        // Watch for cuts before looking at `online`: a cut in between is
        // then either seen here or reported to the connection.
        let mut cut = cuts.subscribe();
        if !online.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
            // Both sockets drop here: the client sees its connection end.
        });
    }
}
