//! HTTP layer: /v1 routing, envelope, status codes, limits, TLS.
