//! One place that turns AWS errors into the engine's error classes, so every client retries
//! the same way: throttling and 5xx back off, eventual consistency waits, conflicts re-observe,
//! the rest fails at once with the service's own message.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use reconciler_engine::provider::{ErrorClass, ProviderError};

/// Error codes meaning "slow down".
pub(crate) const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "Rate exceeded",
];

/// Error codes meaning "the world has not caught up yet".
const EVENTUAL: &[&str] = &[
    "DependencyViolation",
    "ResourceInUse",
    "ResourceInUseException",
    "ResourceContention",
    "IncorrectState",
    "IncorrectInstanceState",
    "InvalidIamInstanceProfile",
    "InvalidParameterValueException",
    "FileSystemInUse",
    "MountTargetConflict",
    "IncorrectFileSystemLifeCycleState",
    "OperationAbortedException",
    "ConcurrentModificationException",
    "ConcurrentModification",
    "ScalingActivityInProgress",
    "UpdateInProgressException",
    "DeleteConflict",
    // Route 53: the zone's records are still being deleted.
    "HostedZoneNotEmpty",
    // Route 53: the CloudWatch Logs resource policy just written is not in effect yet.
    "InsufficientCloudWatchLogsResourcePolicy",
];

/// Error codes meaning "it already exists".
const CONFLICT: &[&str] = &[
    "AlreadyExists",
    "AlreadyExistsException",
    "AlreadyExistsFault",
    "EntityAlreadyExists",
    "EntityAlreadyExistsException",
    "ResourceAlreadyExistsException",
    "FileSystemAlreadyExists",
    "InvalidGroup.Duplicate",
    "InvalidKeyPair.Duplicate",
    "InvalidLaunchTemplateName.AlreadyExistsException",
    "InvalidPermission.Duplicate",
    "RouteAlreadyExists",
    "Resource.AlreadyAssociated",
    // Route 53: the caller reference was used already (by an earlier attempt of this create).
    "HostedZoneAlreadyExists",
    // Route 53: the zone has a query logging config already.
    "QueryLoggingConfigAlreadyExists",
    // SSM: PutParameter without overwrite found the name taken.
    "ParameterAlreadyExists",
];

/// True for codes that mean "not found" in any service (`InvalidVpcID.NotFound`,
/// `NoSuchEntity`, `NoSuchHostedZone`, `ResourceNotFoundException`, ...).
pub fn is_not_found_code(code: &str) -> bool {
    code.ends_with(".NotFound")
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundException")
        || code.ends_with("NotFoundFault")
        || code.starts_with("NoSuch")
        || code == "NotFound"
        || code == "InvalidGroup.NotFound"
        || code == "ClusterNotFoundException"
}

/// Messages of `InvalidParameterValueException` that only mean "not yet": a just-created IAM
/// role not yet assumable, an instance profile not yet visible.
fn is_propagation_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("cannot be assumed")
        || m.contains("not authorized to perform")
        || m.contains("instance profile")
        || m.contains("role defined for the function")
        || m.contains("not yet")
}

/// Classifies an error code and message.
pub fn classify_code(code: &str, message: &str) -> ErrorClass {
    if THROTTLED.contains(&code) {
        ErrorClass::Throttled
    } else if code == "InvalidParameterValueException" {
        if is_propagation_message(message) {
            ErrorClass::EventualConsistency
        } else {
            ErrorClass::Terminal
        }
    } else if EVENTUAL.contains(&code) {
        ErrorClass::EventualConsistency
    } else if CONFLICT.contains(&code) {
        ErrorClass::Conflict
    } else if is_not_found_code(code) {
        ErrorClass::NotFound
    } else if code == "InternalError"
        || code == "InternalFailure"
        || code == "ServiceUnavailable"
        || code == "ServiceUnavailableException"
        || code == "ServerException"
        || code == "Unavailable"
    {
        ErrorClass::Transient
    } else {
        ErrorClass::Terminal
    }
}

/// Turns an SDK error into a classified provider error. `what` names the call for messages
/// (`CreateVpc rc-main`).
pub fn classify<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ProviderError::transient(format!("{what}: {}", describe(&err)))
        }
        SdkError::ResponseError(_) => {
            ProviderError::transient(format!("{what}: unreadable response: {}", describe(&err)))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default().to_string();
            let message = service.err().message().unwrap_or_default().to_string();
            let status = service.raw().status().as_u16();
            let class = if code.is_empty() {
                match status {
                    429 => ErrorClass::Throttled,
                    500..=599 => ErrorClass::Transient,
                    404 => ErrorClass::NotFound,
                    _ => ErrorClass::Terminal,
                }
            } else if status >= 500 && classify_code(&code, &message) == ErrorClass::Terminal {
                ErrorClass::Transient
            } else {
                classify_code(&code, &message)
            };
            let mut e = ProviderError::new(class, format!("{what}: {message}"));
            if !code.is_empty() {
                e = e.with_code(code);
            }
            e
        }
        _ => ProviderError::terminal(format!("{what}: {}", describe(&err))),
    }
}

fn describe(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The error code of an SDK error, when the service sent one.
pub fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    match err {
        SdkError::ServiceError(s) => s.err().code().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes() {
        assert_eq!(classify_code("Throttling", ""), ErrorClass::Throttled);
        assert_eq!(
            classify_code("RequestLimitExceeded", ""),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify_code("DependencyViolation", ""),
            ErrorClass::EventualConsistency
        );
        assert_eq!(
            classify_code(
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda."
            ),
            ErrorClass::EventualConsistency
        );
        assert_eq!(
            classify_code("InvalidParameterValueException", "Runtime is not supported"),
            ErrorClass::Terminal
        );
        assert_eq!(
            classify_code("InvalidVpcID.NotFound", ""),
            ErrorClass::NotFound
        );
        assert_eq!(classify_code("NoSuchEntity", ""), ErrorClass::NotFound);
        assert_eq!(classify_code("NoSuchHostedZone", ""), ErrorClass::NotFound);
        assert_eq!(
            classify_code("HostedZoneNotEmpty", ""),
            ErrorClass::EventualConsistency
        );
        assert_eq!(
            classify_code("HostedZoneAlreadyExists", ""),
            ErrorClass::Conflict
        );
        assert_eq!(
            classify_code("EntityAlreadyExists", ""),
            ErrorClass::Conflict
        );
        assert_eq!(
            classify_code("InvalidGroup.Duplicate", ""),
            ErrorClass::Conflict
        );
        assert_eq!(classify_code("AccessDenied", ""), ErrorClass::Terminal);
        assert_eq!(classify_code("InternalError", ""), ErrorClass::Transient);
    }
}
