//! The `reconciler` command's library: the binary parses arguments and prints; what the
//! commands do lives here, so tests drive the same code.

pub mod calibrate;
pub mod cost;
pub mod day2;
pub mod deploy;
pub mod lock;
pub mod operator;
pub mod prune;
pub mod redact;
pub mod results;
pub mod session;
pub mod watch;
