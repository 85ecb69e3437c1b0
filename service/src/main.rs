//! `chat-service`: serve (the default), `migrate`, or `dlq replay [--dry-run]`.

use service::{config::Settings, startup, telemetry};

/// glibc's malloc took about 15 % of the service's CPU under load (the
/// flame graph of `make profile`); mimalloc costs a fraction of that.
/// The feature `system-allocator` keeps glibc's, for heap profilers that
/// watch `malloc` (heaptrack; `make socket-memory`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    without_huge_pages();
    telemetry::init();
    let settings = Settings::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["serve"] => {
            let stop_timeout = settings.stop_timeout;
            let application = startup::Application::build(settings).await?;
            application
                .run_until_stopped(async move {
                    shutdown_signal().await;
                    exit_after(stop_timeout);
                })
                .await
        }
        ["migrate"] => startup::migrate(&settings).await,
        ["dlq", "replay"] => startup::replay_dlq(&settings, false).await,
        ["dlq", "replay", "--dry-run"] => startup::replay_dlq(&settings, true).await,
        _ => {
            eprintln!("usage: chat-service [serve | migrate | dlq replay [--dry-run]]");
            std::process::exit(2);
        }
    }
}

/// Turns transparent huge pages off for this process. Where the kernel
/// gives them out (here `madvise`, which mimalloc asks for), a 2 MiB page
/// counts whole in RSS however little of it is used: with 6,000 sockets
/// the service held 657 MiB with them and 516 without, at the same CPU
/// (docs/PERFORMANCE.md, round two).
fn without_huge_pages() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("chat-service: transparent huge pages stay on ({error})");
    }
}

/// Ends the process `timeout` from now if it has not ended by then. A
/// stop waits for the backends at several steps (draining sockets, the
/// consumers' last commit and group leave, the producer's flush, the node
/// id's release); with a backend down any of them can hang, and a client
/// library's cleanup can block a thread for good. The watch runs on its
/// own thread, so nothing of the runtime can hold it up.
fn exit_after(timeout: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        tracing::error!(
            ?timeout,
            "still stopping after the stop timeout; exiting now"
        );
        std::process::exit(1);
    });
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("stop signal received; draining");
}
