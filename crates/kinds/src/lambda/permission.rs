//! `lambda.permission`, a statement of a function's resource policy by statement id;
//! untaggable. A statement cannot be edited, so every field is immutable: a change removes
//! the statement, then adds the new one.

use reconciler_engine::provider::{KindSpec, ReplaceStrategy};
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// Lets an AWS service invoke a function, for one source ARN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// The function, by its deterministic name (so observe can read its policy).
    pub function_name: String,
    /// `lambda:InvokeFunction`.
    pub action: String,
    /// The service principal.
    pub principal: String,
    /// The ARN the service acts for (CloudWatch Logs presents a log group's ARN with `:*`).
    pub source_arn: Input<String>,
}

impl Properties for Permission {
    const KIND: &'static str = "lambda.permission";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/functionName")
            .immutable("/action")
            .immutable("/principal")
            .immutable("/sourceArn")
            // Same statement id: the old statement must go before the new one is added.
            .replace_strategy(ReplaceStrategy::DeleteBeforeCreate)
    }
}
