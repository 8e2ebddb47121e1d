//! Production readiness: TLS, limits, slow consumers, drain, reverse proxy.
