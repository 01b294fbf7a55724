//! The use cases of `reconciler`: what a user's command, `watch` and the operator do with
//! validated specs and an AWS session. One converge path (plan, lock, plan again, apply,
//! record) serves `apply`, `watch` and the operator; `destroy`, `prune`, `status`, `wake`,
//! `sleep`, `cost` and `calibrate` live beside it. The `reconciler` binary parses arguments and
//! prints; nothing here prints.

pub mod calibrate;
pub mod converge;
pub mod cost;
pub mod day2;
pub mod deploy;
pub mod destroy;
pub mod lock;
pub mod operator;
pub mod ownership;
pub mod prune;
pub mod results;
pub mod session;
pub mod watch;
