//! `route53.query-logging-config`, by its zone's name. Outputs `id`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A zone's query logging into a log group of `us-east-1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryLoggingConfig {
    /// The zone.
    pub hosted_zone_id: Input<String>,
    /// The log group, by its bare ARN (without `:*`).
    pub cloud_watch_logs_log_group_arn: Input<String>,
}

impl Properties for QueryLoggingConfig {
    const KIND: &'static str = "route53.query-logging-config";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/hostedZoneId")
            .immutable("/cloudWatchLogsLogGroupArn")
    }
}
