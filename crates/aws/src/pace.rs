//! Pacing calls to each API's request rate, so a large account is reconciled at the pace AWS
//! allows instead of failing on throttling.
//!
//! The client pool gives every (service, region) one [`Limiter`], shared by every kind and use
//! case, and wraps the HTTP connector of that service's client: a call waits for a token of
//! the buckets its operation draws from before it is sent. The buckets start at the rates AWS
//! documents (see `docs/benchmarks.md`) and adapt as the SDK's adaptive retry mode does: a
//! throttling answer empties the bucket and cuts its fill rate, and successes bring the rate back
//! up to the documented one. A throttled read is sent again after the limiter's wait (up to
//! [`READ_THROTTLE_ATTEMPTS`]), so an observation never fails because AWS asked it to slow
//! down; a throttled write is answered as it came, for the engine's retry policy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::config_bag::ConfigBag;

use crate::metrics::is_read;

/// How many times a throttled read is sent, the first included: far above what pacing needs
/// (a read throttled once is sent again after the limiter's wait under a lower rate).
pub const READ_THROTTLE_ATTEMPTS: u32 = 30;

/// Share of the documented rate a throttle leaves (as the SDK's adaptive mode's beta).
const THROTTLE_FACTOR: f64 = 0.7;
/// Lowest rate a bucket falls to, as a share of the documented one.
const FLOOR: f64 = 0.05;
/// Share of the documented rate each success adds back.
const RECOVERY: f64 = 0.05;

/// A bucket's documented burst and sustained rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Maximum tokens.
    pub capacity: f64,
    /// Tokens added per second.
    pub refill: f64,
}

const fn rate(capacity: f64, refill: f64) -> Rate {
    Rate { capacity, refill }
}

/// The buckets an operation of `service` draws from, by name, at AWS's documented rates, or
/// 10 a second per operation where AWS documents none.
pub fn buckets(service: &str, operation: &str, read: bool) -> Vec<(String, Rate)> {
    let own = |r: Rate| vec![(operation.to_string(), r)];
    match (service, operation) {
        // One bucket for the whole account's Route 53 API; a zone create also has its own.
        ("route53", "CreateHostedZone") => vec![
            ("account".into(), rate(50.0, 10.0)),
            (operation.into(), rate(40.0, 2.0)),
        ],
        ("route53", "DeleteHostedZone") => vec![
            ("account".into(), rate(50.0, 10.0)),
            (operation.into(), rate(40.0, 5.0)),
        ],
        ("route53", _) => vec![("account".into(), rate(50.0, 10.0))],
        ("ec2", _) if read => own(rate(100.0, 20.0)),
        ("ec2", _) => own(rate(50.0, 5.0)),
        ("lambda", "GetFunction") => own(rate(100.0, 100.0)),
        ("lambda", "GetPolicy") => own(rate(15.0, 15.0)),
        ("lambda", _) => vec![("control plane".into(), rate(15.0, 15.0))],
        ("cloudwatch", "DescribeAlarms") => own(rate(9.0, 9.0)),
        ("cloudwatch", "PutMetricAlarm" | "DeleteAlarms") => own(rate(3.0, 3.0)),
        ("cloudwatch", "TagResource" | "UntagResource") => own(rate(20.0, 20.0)),
        ("ecs", _) if read => own(rate(50.0, 20.0)),
        _ => own(rate(10.0, 10.0)),
    }
}

/// One adaptive token bucket. Tokens may go negative: each waiting call reserves its token, so
/// callers are served in the order they came at the bucket's rate.
#[derive(Debug)]
struct Adaptive {
    documented: Rate,
    refill: f64,
    tokens: f64,
    at: Instant,
}

impl Adaptive {
    fn new(documented: Rate, now: Instant) -> Self {
        Adaptive {
            documented,
            refill: documented.refill,
            tokens: documented.capacity,
            at: now,
        }
    }

    fn refill_to(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill).min(self.documented.capacity);
        self.at = now.max(self.at);
    }

    /// Reserves a token and says how long to wait until it is there.
    fn reserve(&mut self, now: Instant) -> Duration {
        self.refill_to(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.refill)
        }
    }

    fn throttled(&mut self, now: Instant) {
        self.refill_to(now);
        self.tokens = self.tokens.min(0.0);
        let floor = self.documented.refill * FLOOR;
        self.refill = (self.refill * THROTTLE_FACTOR).max(floor);
    }

    fn succeeded(&mut self) {
        let step = self.documented.refill * RECOVERY;
        self.refill = (self.refill + step).min(self.documented.refill);
    }
}

/// The buckets of one (service, region).
#[derive(Debug)]
pub struct Limiter {
    service: &'static str,
    buckets: Mutex<HashMap<String, Adaptive>>,
}

impl Limiter {
    /// A limiter for `service` (the pool's name for it) at its documented rates.
    pub fn new(service: &'static str) -> Self {
        Limiter {
            service,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves a token of every bucket `operation` draws from; the wait until all are there.
    pub fn reserve(&self, operation: &str, read: bool, now: Instant) -> Duration {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        buckets_of(self.service, operation, read)
            .into_iter()
            .map(|(name, documented)| {
                buckets
                    .entry(name)
                    .or_insert_with(|| Adaptive::new(documented, now))
                    .reserve(now)
            })
            .max()
            .unwrap_or_default()
    }

    /// A throttling answer to `operation`: its buckets slow down.
    pub fn throttled(&self, operation: &str, read: bool, now: Instant) {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        for (name, documented) in buckets_of(self.service, operation, read) {
            buckets
                .entry(name)
                .or_insert_with(|| Adaptive::new(documented, now))
                .throttled(now);
        }
    }

    /// A call that was not throttled: its buckets recover toward the documented rate.
    pub fn succeeded(&self, operation: &str, read: bool) {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        for (name, _) in buckets_of(self.service, operation, read) {
            if let Some(bucket) = buckets.get_mut(&name) {
                bucket.succeeded();
            }
        }
    }

    /// The current fill rate of the bucket `name`, if it was used.
    pub fn refill(&self, name: &str) -> Option<f64> {
        let buckets = self.buckets.lock().expect("limiter lock");
        buckets.get(name).map(|b| b.refill)
    }
}

fn buckets_of(service: &str, operation: &str, read: bool) -> Vec<(String, Rate)> {
    buckets(service, operation, read)
}

/// The operation a request calls, put on it before it is sent so the connector knows which
/// buckets it draws from.
#[derive(Debug, Clone)]
struct Paced {
    operation: String,
    read: bool,
}

/// Names each request's operation for [`PacedClient`].
#[derive(Debug)]
pub(crate) struct NameOperation;

impl Intercept for NameOperation {
    fn name(&self) -> &'static str {
        "NameOperation"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            context.request_mut().add_extension(Paced {
                operation: m.name().to_string(),
                read: is_read(m.name()),
            });
        }
        Ok(())
    }
}

/// An HTTP client whose connectors wait for the limiter's tokens.
#[derive(Debug, Clone)]
pub(crate) struct PacedClient {
    inner: SharedHttpClient,
    limiter: std::sync::Arc<Limiter>,
}

impl PacedClient {
    pub(crate) fn new(inner: SharedHttpClient, limiter: std::sync::Arc<Limiter>) -> Self {
        PacedClient { inner, limiter }
    }
}

impl HttpClient for PacedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(PacedConnector {
            inner: self.inner.http_connector(settings, components),
            limiter: self.limiter.clone(),
        })
    }
}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
    limiter: std::sync::Arc<Limiter>,
}

impl HttpConnector for PacedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let limiter = self.limiter.clone();
        HttpConnectorFuture::new(async move { send_paced(&inner, &limiter, request).await })
    }
}

/// Sends `request` once its tokens are there; sends a throttled read again (a fresh copy:
/// AWS did not act on it) until it gets through or [`READ_THROTTLE_ATTEMPTS`] are spent.
async fn send_paced(
    inner: &SharedHttpConnector,
    limiter: &Limiter,
    request: HttpRequest,
) -> Result<HttpResponse, aws_smithy_runtime_api::client::result::ConnectorError> {
    let Some(Paced { operation, read }) = request.extension::<Paced>().cloned() else {
        return inner.call(request).await;
    };
    let mut attempt = 1;
    let mut request = request;
    loop {
        let again = if read && attempt < READ_THROTTLE_ATTEMPTS {
            request.try_clone()
        } else {
            None
        };
        let wait = limiter.reserve(&operation, read, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let response = inner.call(request).await?;
        let (response, throttled) = inspect(response).await;
        if !throttled {
            limiter.succeeded(&operation, read);
            return Ok(response);
        }
        limiter.throttled(&operation, read, Instant::now());
        tracing::debug!(service = limiter.service, operation, attempt, "throttled");
        match again {
            Some(next) => {
                request = next;
                attempt += 1;
            }
            None => return Ok(response),
        }
    }
}

/// Whether an answer is a throttling error, in any protocol's shape (the code in the
/// `x-amzn-errortype` header, a JSON `__type`, an XML `<Code>` or a CBOR map); the answer is
/// given back whole.
async fn inspect(response: HttpResponse) -> (HttpResponse, bool) {
    let status = response.status().as_u16();
    if !matches!(status, 400 | 429 | 503) {
        return (response, false);
    }
    let header = response
        .headers()
        .get("x-amzn-errortype")
        .map(str::to_string)
        .unwrap_or_default();
    let (parts, body) = split(response);
    let bytes = match ByteStream::new(body).collect().await {
        Ok(bytes) => bytes.into_bytes(),
        Err(_) => Default::default(),
    };
    let text = String::from_utf8_lossy(&bytes);
    let throttled = status == 429
        || crate::error::THROTTLED
            .iter()
            .any(|code| header.starts_with(code) || mentions_code(&text, code));
    (join(parts, SdkBody::from(bytes)), throttled)
}

/// `code` appears as a whole error code in `text` (not as part of a longer word).
fn mentions_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let after = text[at + code.len()..].chars().next();
        let before = text[..at].chars().next_back();
        !after.is_some_and(|c| c.is_ascii_alphanumeric())
            && !before.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

fn split(response: HttpResponse) -> (HttpResponse, SdkBody) {
    let mut response = response;
    let body = std::mem::replace(response.body_mut(), SdkBody::empty());
    (response, body)
}

fn join(mut parts: HttpResponse, body: SdkBody) -> HttpResponse {
    *parts.body_mut() = body;
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_adds_no_wait_and_an_empty_one_spaces_calls_at_its_rate() {
        let limiter = Limiter::new("route53");
        let t0 = Instant::now();
        for _ in 0..50 {
            assert_eq!(limiter.reserve("ListHostedZones", true, t0), Duration::ZERO);
        }
        let waits: Vec<Duration> = (0..3)
            .map(|_| limiter.reserve("GetHostedZone", true, t0))
            .collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![100, 200, 300], "the account's bucket, 10 a second");
    }

    #[test]
    fn a_throttle_cuts_the_rate_and_successes_restore_it() {
        let limiter = Limiter::new("lambda");
        let t0 = Instant::now();
        limiter.reserve("ListFunctions", true, t0);
        limiter.throttled("ListFunctions", true, t0);
        let cut = limiter.refill("control plane").unwrap();
        assert!((cut - 15.0 * 0.7).abs() < 1e-9, "{cut}");
        // The bucket is empty after a throttle: the next call waits.
        assert!(limiter.reserve("GetAlias", true, t0) > Duration::ZERO);
        for _ in 0..100 {
            limiter.throttled("ListFunctions", true, t0);
        }
        assert!((limiter.refill("control plane").unwrap() - 15.0 * FLOOR).abs() < 1e-9);
        for _ in 0..100 {
            limiter.succeeded("ListFunctions", true);
        }
        assert_eq!(limiter.refill("control plane"), Some(15.0));
    }

    #[test]
    fn documented_rates_by_service_and_operation() {
        assert_eq!(buckets("lambda", "GetPolicy", true)[0].1, rate(15.0, 15.0));
        assert_eq!(buckets("ec2", "DescribeVpcs", true)[0].1, rate(100.0, 20.0));
        assert_eq!(buckets("ec2", "CreateVpc", false)[0].1, rate(50.0, 5.0));
        assert_eq!(buckets("route53", "CreateHostedZone", false).len(), 2);
        assert_eq!(
            buckets("cloudwatch", "PutMetricAlarm", false)[0].1.refill,
            3.0
        );
        assert_eq!(buckets("ssm", "GetParameters", true)[0].1.refill, 10.0);
    }

    #[test]
    fn throttling_codes_are_found_whole_in_every_shape() {
        assert!(mentions_code(
            "<Error><Code>RequestLimitExceeded</Code></Error>",
            "RequestLimitExceeded"
        ));
        assert!(mentions_code(
            r#"{"__type":"com.amazon#ThrottlingException","message":"Rate exceeded"}"#,
            "ThrottlingException"
        ));
        assert!(!mentions_code(
            r#"{"__type":"ThrottlingException"}"#,
            "Throttling"
        ));
        assert!(!mentions_code("<Code>ValidationError</Code>", "Throttling"));
    }
}
