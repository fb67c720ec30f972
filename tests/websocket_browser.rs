//! The websocket_chat example's page in a real browser: headless Chromium,
//! driven through chromedriver by `tests/browser/chat.py`, loads the page
//! in two tabs, posts a message from the first, and must see it arrive in
//! both (the page's JavaScript, the upgrade, compression as a browser
//! negotiates it, and the broadcast).

#[path = "common/peers.rs"]
mod need;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use need::Peer;

/// Kills the child when the test ends, however it ends.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example's binary: `cargo test` builds examples beside the tests
/// (`target/<profile>/examples/`, next to `deps/` where this test runs).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn chat_page_broadcasts_between_two_browser_tabs() {
    if !need::ready(&[Peer::Chromium, Peer::Python]) {
        return;
    }
    let chat = example("websocket_chat");
    if !chat.exists() {
        let msg = format!(
            "{} is not built: run the whole `cargo test --all-features` (it builds examples)",
            chat.display()
        );
        if std::env::var_os("SQUALL_REQUIRE_PEERS").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return;
    }
    // Port 0: the example prints the one it got.
    let mut server = Killed(
        Command::new(&chat)
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("chat on ")
        .unwrap_or_else(|| panic!("unexpected first line from the example: {line:?}"))
        .to_owned();

    let driver_port = free_port();
    let _driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let python = std::env::var("SQUALL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/chat.py");
    let mut browser = Killed(
        Command::new(python)
            .args([script, &url, &driver_port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Bounded: a browser that hangs fails the test instead of the CI run.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the browser test took over 90 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    let _ = browser.0.stdout.take().unwrap().read_to_string(&mut out);
    let _ = browser.0.stderr.take().unwrap().read_to_string(&mut err);
    assert!(status.success(), "browser test failed:\n{out}\n{err}");
    assert!(out.starts_with("ok:"), "{out}\n{err}");
    eprintln!("{}", out.trim());
}
