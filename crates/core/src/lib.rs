//! Core: requests, the router and mount table, the path framework, ACL, tokens, leases,
//! barrier and seal. No HTTP, no AWS: the server crate turns HTTP into `logical::Request`.

pub mod audit;
pub mod background;
pub mod barrier;
pub mod builtin;
pub mod clock;
pub mod core;
pub mod duration;
pub mod error;
pub mod expiration;
pub mod framework;
pub mod logical;
pub mod metrics;
pub mod mounts;
pub mod policy;
pub mod quota;
pub mod seal;
pub mod stripes;
pub mod sys;
pub mod ttl;

pub use error::{Error, Result};
pub mod token;
