//! `chat-service`: serve (the default) or `migrate`.

use service::{config::Settings, startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let application = startup::Application::build(settings).await?;
            application.run_until_stopped(shutdown_signal()).await
        }
        Some("migrate") => startup::migrate(&settings).await,
        Some(other) => {
            eprintln!("usage: chat-service [serve|migrate]  (unknown command {other:?})");
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
