//! Runnel client (placeholder until the client issue).
