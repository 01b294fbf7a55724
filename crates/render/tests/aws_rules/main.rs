//! The render held to AWS's own published rules rather than the emulator's: the policy
//! documents against AWS's IAM action database (parliament), the longest names the validator
//! allows against the constraints of AWS's API models (botocore), and the IAM documents shipped
//! for operators (`docs/iam/`) against the same linter and the render. Both tools are pinned
//! in `tests/aws/requirements.txt` and installed into `.venv-aws` on first use. Over the same
//! renders of every option: what a (hostile) game container can reach, and what the runtime
//! functions may do to their group.

mod container;
mod names;
mod policies;
mod runtime_roles;
mod shapes;
mod shipped;
mod support;
