//! The `lessor` binary: `server` and the vault-compatible client commands.

fn main() {}
