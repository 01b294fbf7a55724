//! Lambda: the runtime functions and the permissions that let AWS services invoke them.

pub mod env;
mod function;
mod permission;

pub use function::Function;
pub use permission::Permission;
