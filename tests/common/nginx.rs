//! nginx on a free loopback port with a `server { }` block of the test's,
//! in a temporary prefix; stopped by PID (and its prefix removed) on drop.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with one `server` block: `server` gets the prefix
    /// directory and returns the block's body (without `listen`, which is
    /// added, with `ssl` if asked).
    pub fn start(server: impl FnOnce(&std::path::Path) -> String, ssl: bool) -> Nginx {
        Nginx::start_with(|_| String::new(), server, ssl, |_| {})
    }

    /// [`start`](Nginx::start) with more: `http` gives lines for the `http`
    /// block (an `upstream`, say), and `prepare` adjusts the command (its
    /// own process group, say).
    pub fn start_with(
        http: impl FnOnce(&std::path::Path) -> String,
        server: impl FnOnce(&std::path::Path) -> String,
        ssl: bool,
        prepare: impl FnOnce(&mut Command),
    ) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("squall-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let extra = http(&dir);
        let body = server(&dir);
        let conf = format!(
            r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    {extra}
    server {{
        listen 127.0.0.1:{port}{ssl};
        {body}
    }}
}}
"#,
            dir = dir.display(),
            ssl = if ssl { " ssl" } else { "" },
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let program = if std::path::Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        };
        let mut cmd = Command::new(program);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null());
        prepare(&mut cmd);
        let child = cmd
            .spawn()
            .expect("nginx is installed (.ci/run installs it)");
        let nginx = Nginx {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(nginx.addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Nginx {
    /// nginx's master process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID, which we have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
