//! `chat-service`: serve (the default), `migrate`, or `dlq replay [--dry-run]`.

use service::{config::Settings, startup, telemetry};

/// glibc's malloc took about 15 % of the service's CPU under load (the
/// flame graph of `make profile`); mimalloc costs a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["serve"] => {
            let application = startup::Application::build(settings).await?;
            application.run_until_stopped(shutdown_signal()).await
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
