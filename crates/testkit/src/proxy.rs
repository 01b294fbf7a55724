//! A loopback HTTP proxy in front of the emulator that misbehaves on purpose, the way AWS
//! does: throttling and server errors in each protocol's real error shape, connections reset
//! before or after the request reached the service, stalled answers, added latency, and
//! scripted errors or faults for one operation, and AWS's documented request rates
//! ([`crate::rates`]). It can also answer chosen requests itself with
//! scripted successful replies, for operations the emulator does not implement (the tests that
//! use them name the gap). It also counts requests by operation and can run a hook after the
//! k-th mutating call (the interruption tests kill a `reconciler` process there).
//!
//! Being a proxy rather than an SDK layer, it serves in-process tests and the `reconciler`
//! binary alike (`--endpoint-url`), and it can stamp the emulator's account header so a binary
//! run gets an account of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::rates::{Call, RateTable};
use crate::ACCOUNT_HEADER;

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The service's throttling error (HTTP 400/429), before the request reaches it.
    Throttle,
    /// HTTP 500 `InternalFailure`, before the request reaches the service.
    ServerError,
    /// HTTP 503 `ServiceUnavailable`, before the request reaches the service.
    Unavailable,
    /// The connection closes before the request is forwarded.
    ResetBeforeSend,
    /// The request is carried out, then the connection closes without an answer: the client
    /// cannot know it succeeded (what idempotency tokens are for).
    ResetAfterSend,
    /// The request is carried out and the answer withheld for [`FaultPlan::stall`].
    Stall,
}

impl Fault {
    /// Every kind, for a plan that mixes them all.
    pub const ALL: [Fault; 6] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Unavailable,
        Fault::ResetBeforeSend,
        Fault::ResetAfterSend,
        Fault::Stall,
    ];
}

/// An error answered instead of forwarding, for the first `times` calls of one operation.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// Operation name as the SDK names it (`CreateFunction`); for REST services the proxy
    /// derives it from the method and path, see [`operation_of`].
    pub operation: String,
    /// How many calls get the error.
    pub times: u64,
    /// HTTP status.
    pub status: u16,
    /// Error code (`InvalidParameterValueException`).
    pub code: String,
    /// Error message.
    pub message: String,
    /// The error is answered only once this many mutating requests have gone through (0:
    /// from the start), so a test can fail a call in the middle of a run (after a lock is
    /// taken, say).
    pub after_mutations: u64,
}

/// A fault played on the first `times` calls of one operation, whatever the dice say: a lost
/// answer ([`Fault::ResetAfterSend`]) on exactly the create a test is about.
#[derive(Debug, Clone)]
pub struct ScriptedFault {
    /// Operation name, as for [`Scripted`].
    pub operation: String,
    /// How many calls get the fault.
    pub times: u64,
    /// The fault.
    pub fault: Fault,
}

/// A successful answer given instead of forwarding, for an operation the emulator lacks.
/// Replies matching a request are used once each, in order; once used up, requests are
/// forwarded again.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP method of the request (`PUT`).
    pub method: String,
    /// The request path starts with this (`/restore-jobs`).
    pub path_prefix: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// The answer's body (JSON for the REST-JSON services).
    pub body: String,
}

/// What the proxy does to traffic.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Seed of the fault dice: the same seed and request order give the same faults.
    pub seed: u64,
    /// Probability of a fault per request, 0.0 to 1.0.
    pub rate: f64,
    /// Kinds to choose from, uniformly.
    pub kinds: Vec<Fault>,
    /// Latency added to every request before it is forwarded.
    pub latency: Duration,
    /// How long a [`Fault::Stall`] withholds the answer (longer than the client's attempt
    /// timeout, so the client gives up).
    pub stall: Duration,
    /// Scripted errors, checked before the dice.
    pub scripted: Vec<Scripted>,
    /// Scripted successful replies, checked first.
    pub replies: Vec<Reply>,
    /// Scripted faults, checked after the scripted errors and before the dice.
    pub faults: Vec<ScriptedFault>,
    /// Account header to stamp on requests that carry none (for binaries).
    pub account: Option<String>,
    /// Throttle at AWS's documented request rates ([`crate::rates::RULES`]) times this factor
    /// (1.0: as documented), answering each protocol's throttling error when a bucket is empty.
    pub rates: Option<f64>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            seed: 1,
            rate: 0.0,
            kinds: Fault::ALL.to_vec(),
            latency: Duration::ZERO,
            stall: Duration::from_secs(3),
            scripted: Vec::new(),
            replies: Vec::new(),
            faults: Vec::new(),
            account: None,
            rates: None,
        }
    }
}

/// Counts of what went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests received.
    pub requests: u64,
    /// Requests that would change something (not Describe/List/Get/...), faulted or not.
    pub mutations: u64,
    /// Faults injected, by kind (scripted errors under their code).
    pub injected: BTreeMap<String, u64>,
    /// Requests by `service:operation`.
    pub operations: BTreeMap<String, u64>,
    /// Requests answered with a scripted [`Reply`]: method, path and body, in order.
    pub replied: Vec<(String, String, String)>,
    /// Requests throttled by the rate-limit mode, by `service:operation`.
    pub throttled: BTreeMap<String, u64>,
}

type Hook = Box<dyn Fn() + Send + Sync>;

struct State {
    upstream: String,
    plan: FaultPlan,
    counter: AtomicU64,
    mutations: AtomicU64,
    stats: Mutex<ProxyStats>,
    scripted_used: Mutex<BTreeMap<String, u64>>,
    replies_used: Mutex<Vec<bool>>,
    hook: Mutex<Option<(u64, Hook)>>,
    rates: Option<RateTable>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A running proxy. It stops when dropped.
pub struct Proxy {
    url: String,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (the emulator's URL) on a loopback port, on its own
    /// thread and runtime, so it serves sync and async tests alike.
    pub fn start(upstream: &str, plan: FaultPlan) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let replies = plan.replies.len();
        let rates = plan.rates.map(RateTable::scaled);
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            plan,
            counter: AtomicU64::new(0),
            mutations: AtomicU64::new(0),
            stats: Mutex::new(ProxyStats::default()),
            scripted_used: Mutex::new(BTreeMap::new()),
            replies_used: Mutex::new(vec![false; replies]),
            hook: Mutex::new(None),
            rates,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http(),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let state = served.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| {
                                    let state = state.clone();
                                    async move { handle(state, req).await }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Proxy {
            url: format!("http://{addr}"),
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The proxy's URL, to use as the endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What went through so far.
    pub fn stats(&self) -> ProxyStats {
        self.state.stats.lock().expect("stats").clone()
    }

    /// In rate-limit mode, the calls each bucket admitted so far, the slowest first.
    pub fn rate_demand(&self) -> Vec<crate::rates::Demand> {
        self.state
            .rates
            .as_ref()
            .map(RateTable::demand)
            .unwrap_or_default()
    }

    /// Runs `hook` once, right after the answer to the `k`-th mutating request (counted from
    /// now) has been received from the service and before it is passed on.
    pub fn after_mutations(&self, k: u64, hook: impl Fn() + Send + Sync + 'static) {
        let base = self.state.mutations.load(Ordering::SeqCst);
        *self.state.hook.lock().expect("hook") = Some((base + k, Box::new(hook)));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The wire protocol of a request, which decides the shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// awsJson 1.0/1.1 (`X-Amz-Target`).
    Json,
    /// Smithy RPC v2 CBOR (CloudWatch).
    Cbor,
    /// EC2's query dialect.
    Ec2Query,
    /// awsQuery (IAM, Auto Scaling, SNS, STS).
    Query,
    /// REST-JSON (Lambda, EFS, Backup).
    RestJson,
    /// REST-XML (Route 53).
    RestXml,
}

/// A part of a request's credential scope (`AKID/date/region/service/aws4_request`).
fn credential_part(req: &Request<Bytes>, n: usize) -> String {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split(',').next())
        .and_then(|cred| cred.split('/').nth(n))
        .unwrap_or("unknown")
        .to_string()
}

/// The signing service of a request (`ec2`, `iam`, ...), from its Authorization header.
fn service_of(req: &Request<Bytes>) -> String {
    credential_part(req, 3)
}

/// Whether the rate-limit mode admits a request; counts it when it does not.
fn admitted(state: &State, req: &Request<Bytes>, service: &str, label: &str, read: bool) -> bool {
    let Some(rates) = &state.rates else {
        return true;
    };
    let account = req
        .headers()
        .get(ACCOUNT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| state.plan.account.clone())
        .unwrap_or_default();
    let region = credential_part(req, 2);
    let operation = RateTable::operation(service, req.method().as_str(), req.uri().path(), label);
    let call = Call {
        service,
        operation: &operation,
        account: &account,
        region: &region,
        read,
        body: req.body(),
    };
    if rates.admit(&call, std::time::Instant::now()) {
        return true;
    }
    let mut stats = state.stats.lock().expect("stats");
    *stats.injected.entry("rate-limit".to_string()).or_default() += 1;
    *stats
        .throttled
        .entry(format!("{service}:{operation}"))
        .or_default() += 1;
    false
}

fn protocol_of(service: &str, req: &Request<Bytes>) -> Protocol {
    if req.headers().contains_key("x-amz-target") {
        Protocol::Json
    } else if req.headers().contains_key("smithy-protocol") {
        Protocol::Cbor
    } else if service == "ec2" {
        Protocol::Ec2Query
    } else if service == "route53" {
        Protocol::RestXml
    } else if matches!(service, "lambda" | "elasticfilesystem" | "backup") {
        Protocol::RestJson
    } else {
        Protocol::Query
    }
}

/// The operation a request calls: from `X-Amz-Target`, the CBOR path, the query's `Action`,
/// or for REST services `METHOD /first/path/segments` (ids left out).
pub fn operation_of(req: &Request<Bytes>) -> String {
    if let Some(target) = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let path = req.uri().path();
    if req.headers().contains_key("smithy-protocol") {
        return path.rsplit('/').next().unwrap_or(path).to_string();
    }
    if let Ok(body) = std::str::from_utf8(req.body()) {
        if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            return action.to_string();
        }
    }
    // REST: the method and the path's fixed segments.
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(2).collect();
    match (req.method().as_str(), segments.as_slice()) {
        ("POST", [_, "functions"]) => "CreateFunction".to_string(),
        (method, segs) => format!("{method} /{}", segs.join("/")),
    }
}

/// Whether a call changes something (by the same rule as the provider's call counter).
fn is_mutation(operation: &str, req: &Request<Bytes>) -> bool {
    const READ: &[&str] = &["Describe", "List", "Get", "Lookup", "Search", "Test"];
    if operation.starts_with("GET ") || operation.starts_with("HEAD ") {
        return false;
    }
    if operation.contains(' ') {
        return req.method() != hyper::Method::GET;
    }
    !READ.iter().any(|p| operation.starts_with(p))
}

/// A fault's answer in the protocol's shape.
fn error_response(
    protocol: Protocol,
    status: u16,
    code: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let request_id = "00000000-0000-4000-8000-000000000000";
    let (content_type, body): (&str, Vec<u8>) = match protocol {
        Protocol::Json | Protocol::RestJson => (
            "application/x-amz-json-1.1",
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#).into_bytes(),
        ),
        Protocol::Cbor => ("application/cbor", cbor_error(code, message)),
        Protocol::Ec2Query => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            )
            .into_bytes(),
        ),
        Protocol::Query | Protocol::RestXml => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                if status >= 500 { "Receiver" } else { "Sender" }
            )
            .into_bytes(),
        ),
    };
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .header("x-amzn-requestid", request_id);
    if matches!(
        protocol,
        Protocol::Json | Protocol::RestJson | Protocol::Cbor
    ) {
        builder = builder.header("x-amzn-errortype", code);
    }
    if protocol == Protocol::Cbor {
        builder = builder.header("smithy-protocol", "rpc-v2-cbor");
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

/// `{"__type": code, "message": message}` in CBOR.
fn cbor_error(code: &str, message: &str) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, s: &str) {
        let len = s.len();
        if len < 24 {
            out.push(0x60 | len as u8);
        } else if len < 256 {
            out.extend([0x78, len as u8]);
        } else {
            out.push(0x79);
            out.extend((len as u16).to_be_bytes());
        }
        out.extend(s.as_bytes());
    }
    let mut out = vec![0xa2];
    text(&mut out, "__type");
    text(&mut out, code);
    text(&mut out, "message");
    text(&mut out, message);
    out
}

/// The throttling error each service answers with.
fn throttle(protocol: Protocol, service: &str) -> (u16, &'static str) {
    match (protocol, service) {
        (Protocol::Ec2Query, _) => (503, "RequestLimitExceeded"),
        (_, "lambda") => (429, "TooManyRequestsException"),
        (_, "route53") => (400, "Throttling"),
        (_, "tagging") => (400, "ThrottledException"),
        (Protocol::Query, _) => (400, "Throttling"),
        _ => (400, "ThrottlingException"),
    }
}

/// A uniform number in [0, 1) from the seed and the request's number (splitmix64).
fn dice(seed: u64, n: u64, salt: u64) -> f64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// An error that makes hyper drop the connection without an answer.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for Reset {}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Reset> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Reset)?.to_bytes();
    let mut req = Request::from_parts(parts, body);
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    let service = service_of(&req);
    let protocol = protocol_of(&service, &req);
    let operation = operation_of(&req);
    let mutation = is_mutation(&operation, &req);
    {
        let mut stats = state.stats.lock().expect("stats");
        stats.requests += 1;
        if mutation {
            stats.mutations += 1;
        }
        *stats
            .operations
            .entry(format!("{service}:{operation}"))
            .or_default() += 1;
    }
    let plan = &state.plan;
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    if !admitted(&state, &req, &service, &operation, !mutation) {
        let (status, code) = throttle(protocol, &service);
        return Ok(error_response(protocol, status, code, "Rate exceeded"));
    }
    let note = |kind: &str| {
        *state
            .stats
            .lock()
            .expect("stats")
            .injected
            .entry(kind.to_string())
            .or_default() += 1;
    };

    // Scripted replies first.
    let reply = {
        let mut used = state.replies_used.lock().expect("replies");
        plan.replies
            .iter()
            .enumerate()
            .find(|(i, r)| {
                !used[*i]
                    && req.method().as_str() == r.method
                    && req.uri().path().starts_with(&r.path_prefix)
            })
            .map(|(i, r)| {
                used[i] = true;
                r.clone()
            })
    };
    if let Some(r) = reply {
        state.stats.lock().expect("stats").replied.push((
            r.method.clone(),
            req.uri().path().to_string(),
            String::from_utf8_lossy(req.body()).into_owned(),
        ));
        return Ok(Response::builder()
            .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK))
            .header("content-type", "application/json")
            .header("x-amzn-requestid", "00000000-0000-4000-8000-000000000001")
            .body(Full::new(Bytes::from(r.body)))
            .expect("response"));
    }

    // Scripted errors next.
    for s in &plan.scripted {
        if s.operation == operation && state.mutations.load(Ordering::SeqCst) >= s.after_mutations {
            let mut used = state.scripted_used.lock().expect("scripted");
            let count = used.entry(s.operation.clone()).or_default();
            if *count < s.times {
                *count += 1;
                drop(used);
                note(&s.code);
                return Ok(error_response(protocol, s.status, &s.code, &s.message));
            }
        }
    }

    let scripted_fault = plan.faults.iter().find_map(|f| {
        if f.operation != operation {
            return None;
        }
        let mut used = state.scripted_used.lock().expect("scripted");
        let count = used.entry(format!("fault:{}", f.operation)).or_default();
        (*count < f.times).then(|| {
            *count += 1;
            f.fault
        })
    });
    let fault = scripted_fault.or_else(|| {
        (plan.rate > 0.0 && !plan.kinds.is_empty() && dice(plan.seed, n, 1) < plan.rate).then(
            || {
                let i = (dice(plan.seed, n, 2) * plan.kinds.len() as f64) as usize;
                plan.kinds[i.min(plan.kinds.len() - 1)]
            },
        )
    });
    match fault {
        Some(Fault::Throttle) => {
            note("throttle");
            let (status, code) = throttle(protocol, &service);
            return Ok(error_response(protocol, status, code, "Rate exceeded"));
        }
        Some(Fault::ServerError) => {
            note("500");
            return Ok(error_response(
                protocol,
                500,
                "InternalFailure",
                "We encountered an internal error. Please try again.",
            ));
        }
        Some(Fault::Unavailable) => {
            note("503");
            return Ok(error_response(
                protocol,
                503,
                "ServiceUnavailable",
                "Service is unavailable. Please try again.",
            ));
        }
        Some(Fault::ResetBeforeSend) => {
            note("reset-before");
            return Err(Reset);
        }
        _ => {}
    }

    if let Some(account) = &plan.account {
        if !req.headers().contains_key(ACCOUNT_HEADER) {
            req.headers_mut().insert(
                ACCOUNT_HEADER,
                account.parse().expect("an account id is a valid header"),
            );
        }
    }
    let answer = forward(&state, req).await.map_err(|_| Reset)?;
    if mutation {
        let done = state.mutations.fetch_add(1, Ordering::SeqCst) + 1;
        let hook = state.hook.lock().expect("hook");
        if let Some((at, run)) = hook.as_ref() {
            if done == *at {
                run();
            }
        }
    }
    match fault {
        Some(Fault::ResetAfterSend) => {
            note("reset-after");
            Err(Reset)
        }
        Some(Fault::Stall) => {
            note("stall");
            tokio::time::sleep(plan.stall).await;
            Ok(answer)
        }
        _ => Ok(answer),
    }
}

async fn forward(
    state: &State,
    req: Request<Bytes>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = format!("{}{path}", state.upstream).parse()?;
    let upstream = Request::from_parts(parts, Full::new(body));
    let answer = state.client.request(upstream).await?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_are_uniform_enough_and_repeatable() {
        let hits = (0..10_000).filter(|n| dice(7, *n, 1) < 0.1).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert_eq!(dice(7, 3, 1), dice(7, 3, 1));
        assert_ne!(dice(7, 3, 1), dice(8, 3, 1));
    }

    #[test]
    fn cbor_errors_are_maps_of_two_texts() {
        let bytes = cbor_error("ThrottlingException", "Rate exceeded");
        assert_eq!(bytes[0], 0xa2);
        assert_eq!(&bytes[1..8], b"\x66__type");
    }
}
