//! The render held to AWS's own published rules rather than the emulator's: the policy
//! documents against AWS's IAM action database (parliament), and the longest names the
//! validator allows against the constraints of AWS's API models (botocore). Both tools are
//! pinned in `tests/aws/requirements.txt` and installed into `.venv-aws` on first use. Over
//! the same renders of every option: what a (hostile) game container can reach, and what the
//! runtime functions may do to their group.

mod container;
mod names;
mod policies;
mod runtime_roles;
mod shapes;
mod support;
