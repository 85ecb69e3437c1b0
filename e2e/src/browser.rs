//! Headless Chromium driven through ChromeDriver (Debian's `chromium` and
//! `chromium-driver`, which `make browser` installs), for tests of the chat
//! page. Each [`Page`] is its own browser with its own profile, like a
//! person on another machine.
//!
//! A scenario records a screenshot of every page after each of its steps
//! ([`Steps::step`]); if it fails, they are written, with one taken at the
//! failure, under `target/nextest/default/screenshots/<test>/`, next to the
//! suite's JUnit report.

use std::{
    future::Future,
    os::unix::process::CommandExt,
    panic::AssertUnwindSafe,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use fantoccini::{wd::Capabilities, Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::{ports::free_port, server::target_dir};

/// How long a page may take to show what a step waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// A ChromeDriver process; its browsers end with it.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts ChromeDriver (`E2E_CHROMEDRIVER`, default
    /// `/usr/bin/chromedriver`) on a free port and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let path = std::env::var("E2E_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        let port = free_port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            // Its own process group, so the browsers it starts end with it
            // even when a failing test never closes them.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("cannot start {path}: run `make browser` (Debian's chromium and chromium-driver)")
            })?;
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        let deadline = Instant::now() + WAIT;
        loop {
            match reqwest::get(&status).await {
                Ok(answer) if answer.status().is_success() => return Ok(driver),
                _ if Instant::now() > deadline => bail!("{path} did not answer on port {port}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// A new headless browser (`E2E_CHROMIUM`, default `/usr/bin/chromium`)
    /// showing `url`.
    pub async fn open(&self, name: &str, url: &str) -> anyhow::Result<Page> {
        let binary =
            std::env::var("E2E_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1100,700",
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .context("ChromeDriver could not start a browser")?;
        client.goto(url).await?;
        Ok(Page {
            name: name.to_owned(),
            client,
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// One browser showing the chat page.
pub struct Page {
    name: String,
    client: Client,
}

impl Page {
    /// The name screenshots of this page carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Types `text` into the input `css` as keystrokes, after clearing it.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let input = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css}"))?;
        input.clear().await?;
        input.send_keys(text).await?;
        Ok(())
    }

    /// Clicks the element `css`, waiting for it. A list the page renders
    /// again (the conversation list does on each new message) can replace
    /// the element between finding and clicking it: then it is found again.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(error) => Err(error),
            };
            match clicked {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() > deadline => {
                    return Err(error).with_context(|| format!("{}: cannot click {css}", self.name))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Runs `body` (a function body that may use `args`) in the page.
    pub async fn script(&self, body: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(body, args).await?)
    }

    /// The text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let found = self
            .script(
                "return [...document.querySelectorAll(arguments[0])].map((node) => node.textContent);",
                vec![json!(css)],
            )
            .await?;
        Ok(serde_json::from_value(found)?)
    }

    /// The text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> anyhow::Result<Option<String>> {
        Ok(self.texts(css).await?.into_iter().next())
    }

    /// Waits until `check` accepts the texts of the elements matching `css`.
    pub async fn wait_texts(
        &self,
        what: &str,
        css: &str,
        check: impl Fn(&[String]) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let texts = self.texts(css).await?;
            if check(&texts) {
                return Ok(texts);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: waited {WAIT:?} for {what}; `{css}` shows {texts:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the first element matching `css` has text that `check` accepts.
    pub async fn wait_text(
        &self,
        what: &str,
        css: &str,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let texts = self
            .wait_texts(what, css, |texts| {
                texts.first().is_some_and(|text| check(text))
            })
            .await?;
        Ok(texts.into_iter().next().unwrap_or_default())
    }

    /// A PNG of the page as it is.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }

    /// Ends the browser.
    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.client.close().await?)
    }
}

/// The screenshots of a scenario's steps.
pub struct Steps {
    test: String,
    shots: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
}

impl Steps {
    /// Screenshots for the test `test` (a file name).
    pub fn new(test: &str) -> Self {
        Self {
            test: test.to_owned(),
            shots: std::sync::Mutex::default(),
        }
    }

    /// Where a failing test's screenshots go: `E2E_SCREENSHOTS`, else
    /// `target/nextest/default/screenshots`, beside `e2e-junit.xml`.
    pub fn dir(&self) -> PathBuf {
        std::env::var_os("E2E_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("nextest/default/screenshots"))
            .join(&self.test)
    }

    /// Records a screenshot of each page after the step `step`.
    pub async fn step(&self, step: &str, pages: &[&Page]) -> anyhow::Result<()> {
        for page in pages {
            let png = page.screenshot().await?;
            let mut shots = self.shots.lock().unwrap();
            let number = shots.len() + 1;
            shots.push((format!("{number:02}-{step}-{}.png", page.name()), png));
        }
        Ok(())
    }

    /// Writes the screenshots kept so far; returns their folder.
    pub fn write(&self) -> anyhow::Result<PathBuf> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir)?;
        for (name, png) in self.shots.lock().unwrap().iter() {
            std::fs::write(dir.join(name), png)?;
        }
        Ok(dir)
    }
}

/// Runs `scenario` with `pages`; if it fails or panics, writes every step's
/// screenshots and one of each page at the failure, then fails the test
/// with the folder's name. `E2E_KEEP_SCREENSHOTS=1` writes them on success
/// too.
pub async fn run_scenario<F>(steps: &Steps, pages: &[&Page], scenario: F)
where
    F: Future<Output = anyhow::Result<()>>,
{
    let outcome = AssertUnwindSafe(scenario).catch_unwind().await;
    let failure = match outcome {
        Ok(Ok(())) => {
            if std::env::var_os("E2E_KEEP_SCREENSHOTS").is_some() {
                let dir = steps.write().expect("write the screenshots");
                eprintln!("screenshots of each step: {}", dir.display());
            }
            return;
        }
        Ok(Err(error)) => format!("{error:#}"),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned()),
    };
    let written = match steps.step("failure", pages).await {
        Ok(()) => steps.write(),
        Err(error) => steps.write().and(Err(error)),
    };
    match written {
        Ok(dir) => panic!("{failure}\nscreenshots of each step: {}", dir.display()),
        Err(error) => panic!("{failure}\n(screenshots could not be written: {error:#})"),
    }
}
