//! AWS Backup: the Base's vault, daily plan and selection of its file systems by tag.

mod plan;
mod selection;
mod vault;

pub use plan::{Lifecycle, Plan, Rule};
pub use selection::{Condition, Selection};
pub use vault::Vault;
