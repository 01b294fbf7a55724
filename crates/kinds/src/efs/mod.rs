//! EFS: each volume's file system and its mount targets.

mod file_system;
mod mount_target;

pub use file_system::{FileSystem, RestoreFrom};
pub use mount_target::MountTarget;
