//! The `reconciler` command's presentation helpers: what it prints is shaped here (secrets
//! redacted from plans and renders); what the commands do lives in `reconciler-ops`.

pub mod redact;
