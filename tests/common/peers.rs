//! The real peers some tests talk to — curl, Python's Tornado, pymemcache,
//! requests, httpx and aiohttp, memcached, nginx, MariaDB — are installed by
//! `.ci/run`, but maybe not on the machine of someone who just cloned the
//! repository and ran `cargo test`. There a test whose peer is missing says
//! so and passes without running; under CI (`SQUALL_REQUIRE_PEERS=1`, set
//! by `.ci/run`) a missing peer is a failure, so nothing is skipped silently
//! where it counts.
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// A program a test needs beside squall.
#[derive(Clone, Copy, Debug)]
pub enum Peer {
    /// `curl`.
    Curl,
    /// `python3` (or `$SQUALL_PYTHON`) able to `import tornado`.
    Tornado,
    /// `python3` able to `import pymemcache`.
    Pymemcache,
    /// `python3` able to `import requests`.
    Requests,
    /// `python3` able to `import httpx`.
    Httpx,
    /// `python3` able to `import aiohttp`.
    Aiohttp,
    /// `python3` itself (`-m http.server`).
    Python,
    /// `memcached`.
    Memcached,
    /// `nginx` (on PATH or in /usr/sbin).
    Nginx,
    /// `mariadbd` (on PATH or in /usr/sbin), for `mariadb-install-db` beside it.
    Mariadb,
    /// `openssl` (the command-line tool: `s_client`).
    Openssl,
    /// `python3` able to `import websockets`.
    Websockets,
    /// Headless Chromium and its WebDriver (`chromium`, `chromedriver`).
    Chromium,
    /// `memcslap` (libmemcached-tools), memcached's load generator.
    Memcslap,
}

fn python() -> String {
    std::env::var("SQUALL_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `peer` is installed here.
pub fn present(peer: Peer) -> bool {
    match peer {
        Peer::Curl => succeeds("curl", &["--version"]),
        Peer::Tornado => succeeds(&python(), &["-c", "import tornado"]),
        Peer::Pymemcache => succeeds(&python(), &["-c", "import pymemcache"]),
        Peer::Requests => succeeds(&python(), &["-c", "import requests"]),
        Peer::Httpx => succeeds(&python(), &["-c", "import httpx"]),
        Peer::Aiohttp => succeeds(&python(), &["-c", "import aiohttp"]),
        Peer::Python => succeeds(&python(), &["--version"]),
        Peer::Memcached => succeeds("memcached", &["-V"]),
        Peer::Nginx => succeeds("nginx", &["-v"]) || succeeds("/usr/sbin/nginx", &["-v"]),
        Peer::Mariadb => {
            succeeds("mariadbd", &["--version"]) || succeeds("/usr/sbin/mariadbd", &["--version"])
        }
        Peer::Openssl => succeeds("openssl", &["version"]),
        Peer::Websockets => succeeds(&python(), &["-c", "import websockets"]),
        Peer::Chromium => {
            succeeds("chromium", &["--version"]) && succeeds("chromedriver", &["--version"])
        }
        Peer::Memcslap => succeeds("memcslap", &["--version"]),
    }
}

/// Whether a test needing `peers` may run: `true` when all are present.
/// Otherwise, under CI (`SQUALL_REQUIRE_PEERS` set) it panics; elsewhere it
/// prints what is missing and returns `false`, and the test returns early.
pub fn ready(peers: &[Peer]) -> bool {
    let missing: Vec<Peer> = peers.iter().copied().filter(|&p| !present(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{missing:?} not installed (bash .ci/run installs them; \
         `python3 -m pip install tornado pymemcache requests httpx aiohttp websockets` \
         for the Python ones, `apt-get install mariadb-server chromium chromium-driver` for MariaDB and Chromium)"
    );
    if std::env::var_os("SQUALL_REQUIRE_PEERS").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    false
}
