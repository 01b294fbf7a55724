//! Errors a handler returns for one event.
//!
//! A returned error makes Lambda count a failed invocation (and retry an
//! asynchronous one), so only real failures are errors: the "another instance
//! is live, leave DNS alone" case is an outcome, not an error.

use aws_sdk_autoscaling::error::DisplayErrorContext;

/// Why a handler could not finish its work for one event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The payload does not have the shape of the event the function is wired to.
    #[error("the payload is not a valid {expected} event: {reason}")]
    InvalidEvent {
        /// The kind of event expected.
        expected: &'static str,
        /// What was wrong with it.
        reason: String,
    },

    /// An Auto Scaling event type this function does not handle: the
    /// EventBridge rule that targets it matches more than it should.
    #[error(
        "unknown event type '{0}': this function handles '{launch}', '{terminate_action}' and \
         '{terminate_done}'; check the EventBridge rule that targets it",
        launch = crate::events::LAUNCH_SUCCESSFUL,
        terminate_action = crate::events::TERMINATE_LIFECYCLE_ACTION,
        terminate_done = crate::events::TERMINATE_SUCCESSFUL
    )]
    UnknownEventType(String),

    /// The event lacks a field this event type always carries.
    #[error("the '{detail_type}' event has no detail.{field}")]
    MissingEventField {
        /// The event's `detail-type`.
        detail_type: String,
        /// The missing field under `detail`.
        field: &'static str,
    },

    /// DescribeInstances did not return the launched instance.
    #[error("instance {0} was not found by DescribeInstances")]
    InstanceNotFound(String),

    /// The launched instance has no public IPv4 address, so players could not
    /// reach it through the record.
    #[error(
        "instance {instance_id} (state {state}) has no public IPv4 address, so the DNS record \
         cannot point at it; the group's subnets must assign public IPv4 addresses on launch"
    )]
    NoPublicIp {
        /// The instance that launched.
        instance_id: String,
        /// Its EC2 state name, or `unknown`.
        state: String,
    },

    /// EC2 returned something that is not an IPv4 address.
    #[error("instance {instance_id} reported a public address '{address}' that is not IPv4")]
    InvalidPublicIp {
        /// The instance that launched.
        instance_id: String,
        /// What EC2 returned.
        address: String,
    },

    /// DescribeAutoScalingGroups did not return the function's group.
    #[error("Auto Scaling group {0} was not found")]
    GroupNotFound(String),

    /// An AWS call failed, or its request could not be built.
    #[error("{operation} failed: {message}")]
    Aws {
        /// The API operation, e.g. `SetDesiredCapacity`.
        operation: &'static str,
        /// The SDK error with its full chain of causes.
        message: String,
    },
}

impl HandlerError {
    /// A short, stable name of the error kind: Lambda reports it as the
    /// invocation's `errorType`, which alarms and log filters can match on.
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::InvalidEvent { .. } => "InvalidEvent",
            HandlerError::UnknownEventType(_) => "UnknownEventType",
            HandlerError::MissingEventField { .. } => "MissingEventField",
            HandlerError::InstanceNotFound(_) => "InstanceNotFound",
            HandlerError::NoPublicIp { .. } => "NoPublicIp",
            HandlerError::InvalidPublicIp { .. } => "InvalidPublicIp",
            HandlerError::GroupNotFound(_) => "GroupNotFound",
            HandlerError::Aws { .. } => "AwsCallFailed",
        }
    }

    /// Wraps an SDK (or request-builder) error, keeping its causes in the message.
    pub(crate) fn aws<E>(operation: &'static str) -> impl FnOnce(E) -> HandlerError
    where
        E: std::error::Error,
    {
        move |err| HandlerError::Aws {
            operation,
            message: DisplayErrorContext(err).to_string(),
        }
    }
}
