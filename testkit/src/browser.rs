//! Headless Chromium for the browser tests and the first-paint benchmark: a chromedriver of our
//! own, and Chrome DevTools commands sent through it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A chromedriver on a free loopback port (`CHROMEDRIVER`, else Debian's); killed when dropped.
pub struct ChromeDriver {
    _child: tokio::process::Child,
    /// Where it listens (`http://127.0.0.1:<port>`).
    pub url: String,
}

/// Starts a chromedriver and waits until it listens.
///
/// # Errors
/// None is installed, or it did not listen within 20 s.
pub async fn chromedriver() -> anyhow::Result<ChromeDriver> {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    if !std::path::Path::new(&binary).is_file() {
        bail!("no chromedriver at {binary}: apt-get install chromium chromium-driver (or set CHROMEDRIVER)");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = tokio::process::Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {binary}"))?;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("chromedriver did not listen on {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(ChromeDriver { _child: child, url: format!("http://127.0.0.1:{port}") })
}

/// A Chrome DevTools Protocol command (`Page.enable`, `Emulation.setCPUThrottlingRate`, …),
/// sent with `Client::issue_cmd` through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
pub struct Cdp {
    /// The command's name.
    pub cmd: &'static str,
    /// Its parameters.
    pub params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(serde_json::json!({"cmd": self.cmd, "params": self.params}).to_string()))
    }
}
