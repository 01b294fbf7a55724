//! SSM Parameter Store: the apply records.

mod parameter;

pub use parameter::Parameter;
