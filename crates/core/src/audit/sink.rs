//! Where a device writes its lines: a file (or stdout, or nowhere) and sockets.
//!
//! A file is opened once and kept open; `reopen` (SIGHUP) closes and opens it again so log
//! rotation works. A file that cannot be opened leaves the device without a handle: every
//! write then tries to open it again and fails until the path is fixed, which is what makes
//! the broker fail closed rather than drop lines. Sockets connect lazily and reconnect once
//! per write on error.

use std::io::Write;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

const SOCKET_TIMEOUT: Duration = Duration::from_secs(2);

pub enum Sink {
    Discard,
    Stdout,
    File(FileSink),
    Socket(SocketSink),
}

pub struct FileSink {
    path: String,
    /// Unix permissions applied on open; 0 = leave as created.
    mode: u32,
    file: parking_lot::Mutex<Option<std::fs::File>>,
}

impl FileSink {
    pub fn new(path: &str, mode: u32) -> FileSink {
        let sink = FileSink {
            path: path.to_string(),
            mode,
            file: parking_lot::Mutex::new(None),
        };
        if let Err(e) = sink.open() {
            tracing::error!(audit_file = %sink.path, error = %e, "cannot open audit file");
        }
        sink
    }

    fn open(&self) -> std::io::Result<()> {
        let mut guard = self.file.lock();
        *guard = None;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        if self.mode != 0 {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        }
        *guard = Some(f);
        Ok(())
    }

    /// Checks the file can be opened: enabling a device on a bad path fails at once.
    pub fn check(&self) -> Result<()> {
        if self.file.lock().is_some() {
            return Ok(());
        }
        self.open().map_err(|e| {
            Error::bad(format!(
                "sanity check failed; unable to open \"{}\" for writing: {e}",
                self.path
            ))
        })
    }

    fn write(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = self.file.lock();
        if guard.is_none() {
            drop(guard);
            self.open()?;
            guard = self.file.lock();
        }
        let Some(f) = guard.as_mut() else {
            return Err(std::io::Error::other("audit file is not open"));
        };
        // One write per line so concurrent writers never interleave within a line.
        match f.write_all(line) {
            Ok(()) => Ok(()),
            Err(e) => {
                *guard = None;
                Err(e)
            }
        }
    }

    pub fn reopen(&self) {
        if let Err(e) = self.open() {
            tracing::error!(audit_file = %self.path, error = %e, "cannot reopen audit file");
        }
    }
}

pub struct SocketSink {
    address: String,
    kind: SocketKind,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Tcp,
    Udp,
    Unix,
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixStream),
}

impl SocketSink {
    pub fn new(address: &str, kind: SocketKind) -> SocketSink {
        SocketSink {
            address: address.to_string(),
            kind,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(&self) -> std::io::Result<Conn> {
        let fut = async {
            Ok(match self.kind {
                SocketKind::Tcp => Conn::Tcp(tokio::net::TcpStream::connect(&self.address).await?),
                SocketKind::Udp => {
                    let s = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
                    s.connect(&self.address).await?;
                    Conn::Udp(s)
                }
                SocketKind::Unix => {
                    Conn::Unix(tokio::net::UnixStream::connect(&self.address).await?)
                }
            })
        };
        tokio::time::timeout(SOCKET_TIMEOUT, fut)
            .await
            .map_err(|_| std::io::Error::other("timed out connecting"))?
    }

    async fn send(conn: &mut Conn, line: &[u8]) -> std::io::Result<()> {
        let fut = async {
            match conn {
                Conn::Tcp(s) => s.write_all(line).await,
                Conn::Unix(s) => s.write_all(line).await,
                Conn::Udp(s) => s.send(line).await.map(|_| ()),
            }
        };
        tokio::time::timeout(SOCKET_TIMEOUT, fut)
            .await
            .map_err(|_| std::io::Error::other("timed out writing"))?
    }

    async fn write(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = self.conn.lock().await;
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(self.connect().await?);
            }
            let Some(conn) = guard.as_mut() else { continue };
            match Self::send(conn, line).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 1 => {
                    *guard = None;
                    return Err(e);
                }
                Err(_) => *guard = None,
            }
        }
        Err(std::io::Error::other("audit socket unavailable"))
    }
}

impl Sink {
    pub async fn write(&self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            Sink::File(f) => f.write(line),
            Sink::Socket(s) => s.write(line).await,
        }
    }

    pub fn reopen(&self) {
        if let Sink::File(f) = self {
            f.reopen();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_fails_while_its_directory_is_a_file_and_recovers() {
        let dir = std::env::temp_dir().join(format!("lessor-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let sub = dir.join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("audit.log");
        let sink = Sink::File(FileSink::new(path.to_str().unwrap(), 0o600));
        sink.write(b"one\n").await.unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        std::fs::write(&sub, b"not a directory").unwrap();
        sink.reopen();
        assert!(sink.write(b"two\n").await.is_err());
        std::fs::remove_file(&sub).unwrap();
        std::fs::create_dir(&sub).unwrap();
        sink.write(b"three\n").await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
