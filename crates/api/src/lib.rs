//! Wire types shared by the server, the CLI and the tests: the Vault envelope and error body.
