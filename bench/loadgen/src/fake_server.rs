//! An in-process stand-in for a server, for the loops' tests: just enough HTTP/1.1 for the
//! client (keep-alive, requests without bodies), failing every tenth request, and optionally
//! slow, so that queueing can be provoked.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::Call;
use crate::workload::Workload;

/// Sends `n/<seq>`; the fake server fails every tenth.
pub struct Numbered;

impl Workload for Numbered {
    fn call(&self, seq: u64) -> Call {
        Call::get(format!("n/{seq}"))
    }
}

fn status_for(path: &str) -> u16 {
    match path.rsplit('/').next().and_then(|n| n.parse::<u64>().ok()) {
        Some(n) if n % 10 == 0 => 500,
        _ => 200,
    }
}

/// Answers the requests of one connection in order, each `delay` after it was read.
async fn serve(mut socket: TcpStream, delay: Duration) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let status = status_for(path);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\n{{}}");
            if socket.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A fake server answering at once; returns its base address.
pub async fn start() -> String {
    start_slow(Duration::ZERO).await
}

/// A fake server that takes `delay` over each request (one at a time per connection).
pub async fn start_slow(delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, delay));
        }
    });
    format!("http://{addr}")
}
