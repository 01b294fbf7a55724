//! Counting AWS calls: every client of the pool carries this interceptor, so tests can assert
//! "a no-op apply makes zero mutating calls" and benchmarks can report calls per service.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Operation name prefixes that only read.
const READ_PREFIXES: &[&str] = &["Describe", "List", "Get", "Lookup", "Search", "Batch Get"];

/// True when an operation only reads (`DescribeVpcs`, `ListTagsForResource`, `GetRole`).
pub fn is_read(operation: &str) -> bool {
    READ_PREFIXES.iter().any(|p| operation.starts_with(p))
}

/// Calls made, by service and operation.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    calls: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

/// A snapshot of the counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallCounts {
    /// `(service, operation) -> calls`.
    pub by_operation: BTreeMap<String, u64>,
    /// Calls that only read.
    pub reads: u64,
    /// Calls that change something.
    pub mutations: u64,
}

impl CallCounts {
    /// The mutating operations, for failure messages.
    pub fn mutating_operations(&self) -> Vec<String> {
        self.by_operation
            .iter()
            .filter(|(k, _)| !is_read(k.split_once('.').map_or(k.as_str(), |(_, op)| op)))
            .map(|(k, v)| format!("{k} x{v}"))
            .collect()
    }
}

impl CallCounter {
    /// A new, empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> CallCounts {
        let calls = self.calls.lock().expect("counter lock");
        let mut out = CallCounts::default();
        for ((service, op), n) in calls.iter() {
            out.by_operation.insert(format!("{service}.{op}"), *n);
            if is_read(op) {
                out.reads += n;
            } else {
                out.mutations += n;
            }
        }
        out
    }

    /// Forgets every count.
    pub fn reset(&self) {
        self.calls.lock().expect("counter lock").clear();
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Not `read_before_execution`: for client-level interceptors that hook runs before the
    // operation's configuration (which holds the `Metadata`) is applied, so nothing is counted.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let key = (meta.service().to_string(), meta.name().to_string());
            *self
                .calls
                .lock()
                .expect("counter lock")
                .entry(key)
                .or_default() += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_and_mutations_are_told_apart() {
        assert!(super::is_read("DescribeVpcs"));
        assert!(super::is_read("ListTagsForResource"));
        assert!(super::is_read("GetRole"));
        assert!(!super::is_read("CreateVpc"));
        assert!(!super::is_read("AuthorizeSecurityGroupIngress"));
        assert!(!super::is_read("PutRetentionPolicy"));
    }
}
