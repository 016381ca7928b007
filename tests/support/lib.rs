//! Shared helpers for integration tests and benches.
