//! The `lessor` binary: `server` and the vault-compatible client commands.
//!
//! The command line is the vault CLI's, so scripts written for `vault` (or `bao`) run
//! unchanged; the program name does not matter, so a `vault` symlink behaves the same.

mod args;
mod client;
mod commands;
mod output;

// The server allocates many small, short-lived buffers per request (JSON, ciphertext,
// storage keys); glibc's allocator was a fifth of the CPU of a token create.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Lossy, so an argument that is not UTF-8 is an error message later, not a panic here.
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = match argv.first().map(String::as_str) {
        Some("server") => lessor_server::serve_main(argv[1..].to_vec()),
        _ => commands::run(&argv),
    };
    std::process::exit(code);
}
