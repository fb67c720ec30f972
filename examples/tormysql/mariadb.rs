//! A real MariaDB server for the self-test, the tests and the benchmark: a
//! fresh data directory (`mariadb-install-db`), a `mariadbd` on a free
//! loopback port, users made at start by an `--init-file`, everything
//! bounded in time, the server stopped by PID and the directory removed when
//! dropped.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The users the server is started with: `(name, password, plugin)`.
pub const USERS: &[(&str, &str, &str)] = &[
    ("native", "native-pw", "mysql_native_password"),
    ("nopw", "", "mysql_native_password"),
];

/// The database the users may use.
pub const DATABASE: &str = "squall_test";

/// How long installing or starting may take.
const BOUND: Duration = Duration::from_secs(60);

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// `(mariadbd, mariadb-install-db)`, if both are installed.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    Some((
        find(&["mariadbd", "mysqld"])?,
        find(&["mariadb-install-db", "mysql_install_db"])?,
    ))
}

/// A free loopback port (free when asked).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `cmd` to completion within `bound`, or kills it.
fn run_bounded(cmd: &mut Command, bound: Duration, what: &str) -> io::Result<()> {
    let mut child = cmd.stdin(Stdio::null()).spawn()?;
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("{what} failed: {status}")))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!("{what} took over {bound:?}")));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A MariaDB server of our own.
pub struct MariaDb {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    mariadbd: PathBuf,
    child: Option<Child>,
    /// Serves TLS with the certificate and key in `dir` (and has the
    /// [`TLS_USER`] account, which may only log in over TLS).
    tls: bool,
}

/// The account [`MariaDb::start_with_tls`] makes that may only log in over
/// TLS (`REQUIRE SSL`): user and password.
pub const TLS_USER: (&str, &str) = ("squall_tls", "tls-only-secret");

impl MariaDb {
    /// Installs a data directory in a fresh temporary directory and starts
    /// a server on it.
    pub fn start() -> io::Result<MariaDb> {
        MariaDb::start_with(None)
    }

    /// [`start`](MariaDb::start), serving TLS with this certificate chain
    /// and key (PEM), and with the [`TLS_USER`] account.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> io::Result<MariaDb> {
        MariaDb::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> io::Result<MariaDb> {
        let (mariadbd, install_db) = binaries()
            .ok_or_else(|| io::Error::other("mariadbd / mariadb-install-db not installed"))?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "squall-mariadb-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let mut db = MariaDb {
            port: 0,
            dir,
            mariadbd,
            child: None,
            tls: tls.is_some(),
        };
        if let Some((cert, key)) = tls {
            fs::write(db.dir.join("cert.pem"), cert)?;
            fs::write(db.dir.join("key.pem"), key)?;
        }
        let log = fs::File::create(db.dir.join("install.log"))?;
        let mut install = Command::new(&install_db);
        install
            .arg("--no-defaults")
            .arg("--auth-root-authentication-method=normal")
            .arg(format!("--datadir={}", db.datadir().display()))
            .args(["--skip-test-db", "--skip-name-resolve"])
            .stdout(log.try_clone()?)
            .stderr(log);
        if is_root() {
            install.arg("--user=root");
        }
        run_bounded(&mut install, BOUND, "mariadb-install-db").map_err(|e| {
            io::Error::other(format!(
                "{e} (see {})",
                db.dir.join("install.log").display()
            ))
        })?;
        let mut init = format!("CREATE DATABASE IF NOT EXISTS {DATABASE};\n");
        for (user, password, plugin) in USERS {
            init.push_str(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED VIA {plugin} USING PASSWORD('{password}');\n\
                 GRANT ALL ON *.* TO '{user}'@'%';\n"
            ));
        }
        if db.tls {
            let (user, password) = TLS_USER;
            init.push_str(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}' REQUIRE SSL;\n\
                 GRANT ALL ON *.* TO '{user}'@'%';\n"
            ));
        }
        fs::write(db.dir.join("init.sql"), init)?;
        // A port taken between our probe and the server's bind: try another.
        let mut last = None;
        for _ in 0..3 {
            db.port = free_port()?;
            match db.spawn(true) {
                Ok(()) => return Ok(db),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("cannot start mariadbd")))
    }

    fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the server on `self.port` and waits until it accepts.
    fn spawn(&mut self, first: bool) -> io::Result<()> {
        let log = fs::File::create(self.dir.join("server.log"))?;
        let mut cmd = Command::new(&self.mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.datadir().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .args([
                "--skip-name-resolve",
                "--max-allowed-packet=64M",
                "--max-connections=400",
                "--innodb-buffer-pool-size=32M",
                "--skip-log-bin",
                "--character-set-server=utf8mb4",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.tls {
            cmd.arg(format!(
                "--ssl-cert={}",
                self.dir.join("cert.pem").display()
            ))
            .arg(format!("--ssl-key={}", self.dir.join("key.pem").display()));
        }
        if first {
            cmd.arg(format!(
                "--init-file={}",
                self.dir.join("init.sql").display()
            ));
        }
        if is_root() {
            cmd.arg("--user=root");
        }
        self.child = Some(cmd.spawn()?);
        let deadline = Instant::now() + BOUND;
        loop {
            if TcpStream::connect(self.addr()).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "mariadbd on {} exited: {status}; its log: {}",
                    self.port,
                    tail(&self.dir.join("server.log"))
                )));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(io::Error::other(format!(
                    "mariadbd on {} did not accept within {BOUND:?}",
                    self.port
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its process id (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it (SIGKILL, by PID) and reaps it; the data stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data (after [`kill`](MariaDb::kill)).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn(false)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}
