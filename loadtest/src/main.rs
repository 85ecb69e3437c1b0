//! `loadtest`: see `loadtest/README.md`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match loadtest::run::run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("load: {error:#}");
            ExitCode::FAILURE
        }
    }
}
