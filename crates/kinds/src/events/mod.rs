//! EventBridge: the rules that react to the server's instance and task events.

mod rule;

pub use rule::{Rule, Target};
