//! Load generator for any Vault-compatible address.

fn main() {}
