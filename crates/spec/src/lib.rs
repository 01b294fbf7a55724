//! The reconciler's input: `Base` and `ContainerSpec` documents.
//!
//! - [`types`]: the documents (their doc comments are the JSON Schema descriptions);
//! - [`load`]: files, directories and stdin to typed documents, with `${VAR}` substitution;
//! - [`validate`]: what the types accept but AWS would reject later;
//! - [`schema`]: the JSON Schema generated from the types;
//! - [`import`]: the original project's config format to ContainerSpecs and Bases.
//!
//! Every problem becomes a located [`Diagnostic`], and all of them are reported in one run.

pub mod diag;
pub mod import;
pub mod instance_types;
pub mod load;
pub mod redact;
pub mod reference;
pub mod resolve;
pub mod schema;
pub mod types;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Severity};
pub use instance_types::{InstanceCatalog, InstanceTypeInfo, Lookup};
pub use load::{collect_inputs, load, load_from, Input, Loaded, SpecSet};
pub use types::*;
pub use validate::{base_of, dns_name_of, looks_secret, validate};

/// Loads and validates inputs in one step: the spec set and every diagnostic, sorted.
pub fn check(
    inputs: &[Input],
    env: resolve::EnvLookup<'_>,
    catalog: &InstanceCatalog,
) -> (SpecSet, Vec<Diagnostic>) {
    check_from(inputs, &env, catalog)
}

/// [`check`] with `${VAR}` values from an [`resolve::Environment`] that may refuse some names.
pub fn check_from(
    inputs: &[Input],
    env: &dyn resolve::Environment,
    catalog: &InstanceCatalog,
) -> (SpecSet, Vec<Diagnostic>) {
    let (set, mut diags) = load::load_from(inputs, env);
    diags.extend(validate(&set, catalog));
    diag::sort(&mut diags);
    (set, diags)
}
