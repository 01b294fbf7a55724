//! Lambda: the runtime functions and the permissions that let AWS services invoke them.

pub mod env;
mod function;
mod permission;

pub use function::Function;
pub use permission::Permission;

/// The one tag the start function writes on its server's Auto Scaling group: its recent DNS
/// wakes. Render limits the function's tag writes to this key (an `aws:TagKeys` condition)
/// and the handler writes it, both from this name. Outside the reconciler's `reconciler.dev/`
/// prefix, so deploys neither diff nor remove it.
pub const WAKES_TAG: &str = "reconciler-runtime/wakes";
