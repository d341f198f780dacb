//! HTTP layer: /v1 routing, envelope, status codes, limits, TLS.

/// Entry point of `lessor server ...`: parses the server flags (`-dev`, `-config`, ...), runs
/// the server until SIGTERM/SIGINT, and returns the process exit code.
pub fn serve_main(args: Vec<String>) -> i32 {
    let _ = args;
    eprintln!("server: not built yet");
    1
}
