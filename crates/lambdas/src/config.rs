//! Environment configuration of the handlers.
//!
//! Each handler reads its settings once, at cold start, and refuses to start
//! when any of them is missing or malformed. Every problem is collected before
//! the error is returned, so one failed deploy shows the whole list instead of
//! one variable per attempt.
//!
//! The readers take a lookup function instead of reading the process
//! environment directly: tests can then check the validation without
//! `std::env::set_var`, which races with other test threads.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

/// Chooses the handler the binary runs (`start-system`, `instance-state-change`,
/// `break-crash-loop`, `idle-stop` or `wake-dispatcher`): one artifact serves
/// every function.
pub const HANDLER_VAR: &str = "RECONCILER_HANDLER";

/// Auto Scaling group the handler scales.
pub const ASG_NAME: &str = "ASG_NAME";
/// Region of the Auto Scaling group and of every client the handler builds.
pub const ASG_REGION: &str = "ASG_REGION";
/// CloudWatch namespace of the DNS-traffic metric.
pub const METRIC_NAMESPACE: &str = "METRIC_NAMESPACE";
/// Name of the DNS-traffic metric (`DNSTraffic`).
pub const METRIC_NAME: &str = "METRIC_NAME";
/// JSON object of dimension name to value, e.g. `{"ServerName":"minecraft"}`.
pub const METRIC_DIMENSIONS: &str = "METRIC_DIMENSIONS";
/// Value pushed on each DNS hit: the idle threshold plus one.
pub const METRIC_VALUE: &str = "METRIC_VALUE";
/// Route 53 hosted zone that holds the server's A record.
pub const HOSTED_ZONE_ID: &str = "HOSTED_ZONE_ID";
/// Fully qualified name of the server's A record.
pub const RECORD_NAME: &str = "RECORD_NAME";
/// TTL of the A record in seconds (default [`DEFAULT_RECORD_TTL`]).
pub const RECORD_TTL: &str = "RECORD_TTL";
/// Address the A record points at while no instance runs (default
/// [`DEFAULT_UNAVAILABLE_IP`]).
pub const UNAVAILABLE_IP: &str = "UNAVAILABLE_IP";
/// Minutes after a DNS wake during which DNS lookups do not wake a stopped
/// server again (default 0: no cooldown).
pub const WAKE_COOLDOWN_MINUTES: &str = "WAKE_COOLDOWN_MINUTES";
/// DNS wakes allowed in any sliding hour (default 0: no limit).
pub const MAX_WAKES_PER_HOUR: &str = "MAX_WAKES_PER_HOUR";
/// Minutes after an instance's launch during which the idle alarm cannot
/// stop it.
pub const BOOT_GRACE_MINUTES: &str = "BOOT_GRACE_MINUTES";
/// Name of the idle alarm that invokes idle-stop (reset to OK while the
/// instance is in its boot grace, so it can fire again).
pub const ALARM_NAME: &str = "ALARM_NAME";
/// The wake dispatcher's routes: a JSON object of DNS name to the start
/// function that wakes its server, e.g. `{"mc.example.com":"rc-mc-start-system"}`.
pub const ROUTES: &str = "ROUTES";
/// Region of the start functions the wake dispatcher invokes.
pub const FUNCTION_REGION: &str = "FUNCTION_REGION";

/// One second, so resolvers ask again almost every time and each connection
/// attempt reaches the query log that starts the system.
pub const DEFAULT_RECORD_TTL: i64 = 1;
/// `0.0.0.0`: an answer that fails fast on the client instead of timing out.
pub const DEFAULT_UNAVAILABLE_IP: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// The largest TTL Route 53 accepts.
const MAX_RECORD_TTL: i64 = 2_147_483_647;

/// Every missing and every malformed variable of one handler's configuration.
///
/// Values are never echoed, only the reason they were rejected, so the error
/// can be logged as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigError {
    /// Variables that are unset or empty, in the order the handler reads them.
    pub missing: Vec<&'static str>,
    /// Variables that are set but cannot be used.
    pub invalid: Vec<InvalidVariable>,
}

/// A variable that is set to something the handler cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidVariable {
    /// The variable's name.
    pub name: &'static str,
    /// What was expected instead.
    pub reason: String,
}

impl ConfigError {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let noun = if self.missing.len() == 1 {
                "variable"
            } else {
                "variables"
            };
            parts.push(format!(
                "missing environment {noun}: {}",
                self.missing.join(", ")
            ));
        }
        if !self.invalid.is_empty() {
            let noun = if self.invalid.len() == 1 {
                "variable"
            } else {
                "variables"
            };
            let list: Vec<String> = self
                .invalid
                .iter()
                .map(|v| format!("{} ({})", v.name, v.reason))
                .collect();
            parts.push(format!("invalid environment {noun}: {}", list.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// Collects values and problems while a configuration is read.
struct EnvReader<F> {
    lookup: F,
    error: ConfigError,
}

impl<F: Fn(&str) -> Option<String>> EnvReader<F> {
    fn new(lookup: F) -> Self {
        EnvReader {
            lookup,
            error: ConfigError::default(),
        }
    }

    /// A trimmed, non-empty value, or `None` when unset or blank.
    fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A trimmed, non-empty value; records the variable as missing otherwise.
    fn required(&mut self, name: &'static str) -> Option<String> {
        let value = self.optional(name);
        if value.is_none() {
            self.error.missing.push(name);
        }
        value
    }

    /// A required value run through `parse`; records either kind of problem.
    fn required_parsed<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.required(name)?;
        self.check(name, parse(&raw))
    }

    /// An optional value run through `parse`, or `default` when unset.
    fn optional_parsed<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.optional(name) {
            None => Some(default),
            Some(raw) => self.check(name, parse(&raw)),
        }
    }

    fn check<T>(&mut self, name: &'static str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(reason) => {
                self.error.invalid.push(InvalidVariable { name, reason });
                None
            }
        }
    }

    fn region(&mut self) -> Option<String> {
        self.required_parsed(ASG_REGION, parse_region)
    }

    /// Ends the reading: `Ok` only when nothing was missing or invalid.
    fn finish(self) -> Result<(), ConfigError> {
        if self.error.is_empty() {
            Ok(())
        } else {
            Err(self.error)
        }
    }
}

/// Reads the process environment; a value that is not valid Unicode counts as unset.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Which handler the binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandlerKind {
    /// A DNS query for the server arrived: start the instance.
    StartSystem,
    /// The instance launched or is terminating: point DNS at it or away from it.
    InstanceStateChange,
    /// The container keeps failing: stop the instance.
    BreakCrashLoop,
    /// The idle alarm fired: stop the instance unless it is still booting.
    IdleStop,
    /// A DNS query under a shared root zone arrived: wake the server it names.
    WakeDispatcher,
}

impl HandlerKind {
    /// All handlers, in the order their names are listed in errors.
    pub const ALL: [HandlerKind; 5] = [
        HandlerKind::StartSystem,
        HandlerKind::InstanceStateChange,
        HandlerKind::BreakCrashLoop,
        HandlerKind::IdleStop,
        HandlerKind::WakeDispatcher,
    ];

    /// The value of [`HANDLER_VAR`] that selects this handler.
    pub fn name(self) -> &'static str {
        match self {
            HandlerKind::StartSystem => "start-system",
            HandlerKind::InstanceStateChange => "instance-state-change",
            HandlerKind::BreakCrashLoop => "break-crash-loop",
            HandlerKind::IdleStop => "idle-stop",
            HandlerKind::WakeDispatcher => "wake-dispatcher",
        }
    }

    /// Reads [`HANDLER_VAR`] from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads [`HANDLER_VAR`] through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut reader = EnvReader::new(lookup);
        let kind = reader.required_parsed(HANDLER_VAR, |raw| raw.parse());
        reader.finish()?;
        Ok(kind.expect("finish() passed, so the value was read"))
    }
}

impl fmt::Display for HandlerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HandlerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HandlerKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = HandlerKind::ALL.iter().map(|k| k.name()).collect();
                format!("expected one of {}", names.join(", "))
            })
    }
}

/// One CloudWatch dimension of the DNS-traffic metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricDimension {
    /// Dimension name, e.g. `ServerName`.
    pub name: String,
    /// Dimension value, e.g. `minecraft`.
    pub value: String,
}

/// Configuration of the start-system handler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartSystemConfig {
    /// [`ASG_NAME`]
    pub asg_name: String,
    /// [`ASG_REGION`]
    pub asg_region: String,
    /// [`METRIC_NAMESPACE`]
    pub metric_namespace: String,
    /// [`METRIC_NAME`]
    pub metric_name: String,
    /// [`METRIC_DIMENSIONS`], in the order the JSON object lists them.
    pub metric_dimensions: Vec<MetricDimension>,
    /// [`METRIC_VALUE`]
    pub metric_value: f64,
    /// [`WAKE_COOLDOWN_MINUTES`]; 0 is no cooldown.
    pub wake_cooldown_minutes: u32,
    /// [`MAX_WAKES_PER_HOUR`]; 0 is no limit.
    pub max_wakes_per_hour: u32,
}

impl StartSystemConfig {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads and validates the variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = EnvReader::new(lookup);
        let asg_name = r.required(ASG_NAME);
        let asg_region = r.region();
        let metric_namespace = r.required(METRIC_NAMESPACE);
        let metric_name = r.required(METRIC_NAME);
        let metric_dimensions = r.required_parsed(METRIC_DIMENSIONS, parse_dimensions);
        let metric_value = r.required_parsed(METRIC_VALUE, parse_metric_value);
        let wake_cooldown_minutes =
            r.optional_parsed(WAKE_COOLDOWN_MINUTES, 0, |raw| parse_minutes(raw, 1440));
        let max_wakes_per_hour =
            r.optional_parsed(MAX_WAKES_PER_HOUR, 0, |raw| parse_minutes(raw, 60));
        r.finish()?;
        // finish() passed, so every value above is present.
        Ok(StartSystemConfig {
            asg_name: asg_name.unwrap_or_default(),
            asg_region: asg_region.unwrap_or_default(),
            metric_namespace: metric_namespace.unwrap_or_default(),
            metric_name: metric_name.unwrap_or_default(),
            metric_dimensions: metric_dimensions.unwrap_or_default(),
            metric_value: metric_value.unwrap_or_default(),
            wake_cooldown_minutes: wake_cooldown_minutes.unwrap_or_default(),
            max_wakes_per_hour: max_wakes_per_hour.unwrap_or_default(),
        })
    }
}

/// Configuration of the instance-state-change handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStateChangeConfig {
    /// [`ASG_REGION`]: where the instances and the group live.
    pub asg_region: String,
    /// [`HOSTED_ZONE_ID`], without a `/hostedzone/` prefix.
    pub hosted_zone_id: String,
    /// [`RECORD_NAME`]
    pub record_name: String,
    /// [`RECORD_TTL`]
    pub record_ttl: i64,
    /// [`UNAVAILABLE_IP`]
    pub unavailable_ip: Ipv4Addr,
}

impl InstanceStateChangeConfig {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads and validates the variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = EnvReader::new(lookup);
        let asg_region = r.region();
        let hosted_zone_id = r.required_parsed(HOSTED_ZONE_ID, parse_zone_id);
        let record_name = r.required_parsed(RECORD_NAME, parse_record_name);
        let record_ttl = r.optional_parsed(RECORD_TTL, DEFAULT_RECORD_TTL, parse_ttl);
        let unavailable_ip = r.optional_parsed(UNAVAILABLE_IP, DEFAULT_UNAVAILABLE_IP, parse_ipv4);
        r.finish()?;
        Ok(InstanceStateChangeConfig {
            asg_region: asg_region.unwrap_or_default(),
            hosted_zone_id: hosted_zone_id.unwrap_or_default(),
            record_name: record_name.unwrap_or_default(),
            record_ttl: record_ttl.unwrap_or(DEFAULT_RECORD_TTL),
            unavailable_ip: unavailable_ip.unwrap_or(DEFAULT_UNAVAILABLE_IP),
        })
    }
}

/// Configuration of the break-crash-loop handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakCrashLoopConfig {
    /// [`ASG_NAME`]
    pub asg_name: String,
    /// [`ASG_REGION`]
    pub asg_region: String,
}

impl BreakCrashLoopConfig {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads and validates the variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = EnvReader::new(lookup);
        let asg_name = r.required(ASG_NAME);
        let asg_region = r.region();
        r.finish()?;
        Ok(BreakCrashLoopConfig {
            asg_name: asg_name.unwrap_or_default(),
            asg_region: asg_region.unwrap_or_default(),
        })
    }
}

/// Configuration of the idle-stop handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdleStopConfig {
    /// [`ASG_NAME`]
    pub asg_name: String,
    /// [`ASG_REGION`]
    pub asg_region: String,
    /// [`BOOT_GRACE_MINUTES`]
    pub boot_grace_minutes: u32,
    /// [`ALARM_NAME`]
    pub alarm_name: String,
}

impl IdleStopConfig {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads and validates the variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = EnvReader::new(lookup);
        let asg_name = r.required(ASG_NAME);
        let asg_region = r.region();
        let boot_grace_minutes =
            r.required_parsed(BOOT_GRACE_MINUTES, |raw| parse_minutes(raw, 1440));
        let alarm_name = r.required(ALARM_NAME);
        r.finish()?;
        Ok(IdleStopConfig {
            asg_name: asg_name.unwrap_or_default(),
            asg_region: asg_region.unwrap_or_default(),
            boot_grace_minutes: boot_grace_minutes.unwrap_or_default(),
            alarm_name: alarm_name.unwrap_or_default(),
        })
    }
}

/// Configuration of the wake-dispatcher handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WakeDispatcherConfig {
    /// [`ROUTES`], keyed by the normalised name (lower case, no trailing dot).
    pub routes: BTreeMap<String, String>,
    /// [`FUNCTION_REGION`]
    pub function_region: String,
}

impl WakeDispatcherConfig {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads and validates the variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = EnvReader::new(lookup);
        let routes = r.required_parsed(ROUTES, parse_routes);
        let function_region = r.required_parsed(FUNCTION_REGION, parse_region);
        r.finish()?;
        Ok(WakeDispatcherConfig {
            routes: routes.unwrap_or_default(),
            function_region: function_region.unwrap_or_default(),
        })
    }
}

/// A JSON object of DNS name to function name, both non-empty strings. Names are normalised
/// as the query log's are compared ([`crate::events::normalise_query_name`]); two spellings of
/// one name are refused, since only one function could win.
fn parse_routes(raw: &str) -> Result<BTreeMap<String, String>, String> {
    const EXPECTED: &str = r#"expected a JSON object of DNS name to function name, e.g. {"mc.example.com":"rc-mc-start-system"}"#;
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| EXPECTED.to_owned())?;
    let object = value.as_object().ok_or_else(|| EXPECTED.to_owned())?;
    if object.is_empty() {
        return Err("expected at least one route".to_owned());
    }
    let mut routes = BTreeMap::new();
    for (name, function) in object {
        let key = crate::events::normalise_query_name(name);
        let function = match function.as_str() {
            Some(f) if !key.is_empty() && !f.is_empty() && !key.contains(char::is_whitespace) => f,
            _ => return Err(EXPECTED.to_owned()),
        };
        if routes.insert(key.clone(), function.to_owned()).is_some() {
            return Err(format!("the name {key} is listed twice"));
        }
    }
    Ok(routes)
}

/// A whole number from 0 to `max`.
fn parse_minutes(raw: &str, max: u32) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!("expected a whole number from 0 to {max}")),
    }
}

/// A region name such as `eu-west-1`: lower-case words and a number, joined by
/// dashes. Checked so that a typo fails at start instead of as an endpoint
/// resolution error on the first event.
fn parse_region(raw: &str) -> Result<String, String> {
    let parts: Vec<&str> = raw.split('-').collect();
    let words_ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()));
    let number_ok = parts
        .last()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if words_ok && number_ok {
        Ok(raw.to_owned())
    } else {
        Err("expected a region name such as eu-west-1".to_owned())
    }
}

/// A JSON object whose values are all strings, kept in document order.
fn parse_dimensions(raw: &str) -> Result<Vec<MetricDimension>, String> {
    const EXPECTED: &str =
        r#"expected a JSON object of string values, e.g. {"ServerName":"minecraft"}"#;
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| EXPECTED.to_owned())?;
    let object = value.as_object().ok_or_else(|| EXPECTED.to_owned())?;
    if object.is_empty() {
        // The watchdog alarm selects the metric by its dimensions, so a datum
        // without them would never reach it.
        return Err("expected at least one dimension".to_owned());
    }
    if object.len() > 30 {
        return Err("CloudWatch accepts at most 30 dimensions".to_owned());
    }
    object
        .iter()
        .map(|(name, value)| match value.as_str() {
            Some(v) if !name.is_empty() && !v.is_empty() => Ok(MetricDimension {
                name: name.clone(),
                value: v.to_owned(),
            }),
            _ => Err(EXPECTED.to_owned()),
        })
        .collect()
}

/// A finite number: CloudWatch rejects NaN and infinities.
fn parse_metric_value(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err("expected a finite number".to_owned()),
    }
}

/// Route 53 zone ids are sometimes written with the `/hostedzone/` prefix the
/// API returns; accept both forms.
fn parse_zone_id(raw: &str) -> Result<String, String> {
    let id = raw.strip_prefix("/hostedzone/").unwrap_or(raw);
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id.to_owned())
    } else {
        Err("expected a hosted zone id such as Z0123456789ABCDEFGHIJ".to_owned())
    }
}

fn parse_record_name(raw: &str) -> Result<String, String> {
    if raw.contains(char::is_whitespace) || raw.trim_end_matches('.').is_empty() {
        Err("expected a DNS name such as minecraft.games.example.com".to_owned())
    } else {
        Ok(raw.to_owned())
    }
}

fn parse_ttl(raw: &str) -> Result<i64, String> {
    match raw.parse::<i64>() {
        Ok(ttl) if (0..=MAX_RECORD_TTL).contains(&ttl) => Ok(ttl),
        _ => Err(format!("expected whole seconds from 0 to {MAX_RECORD_TTL}")),
    }
}

fn parse_ipv4(raw: &str) -> Result<Ipv4Addr, String> {
    raw.parse()
        .map_err(|_| "expected an IPv4 address such as 0.0.0.0".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in ["eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"] {
            assert!(parse_region(ok).is_ok(), "{ok}");
        }
        for bad in ["", "eu", "eu-west", "EU-WEST-1", "eu-west-x", "eu--1"] {
            assert!(parse_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dimensions_keep_document_order() {
        let dims = parse_dimensions(r#"{"b":"2","a":"1"}"#).unwrap();
        let names: Vec<&str> = dims.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert!(parse_dimensions(r#"{"a":1}"#).is_err());
        assert!(parse_dimensions("[]").is_err());
        assert!(parse_dimensions("{}").is_err());
    }

    #[test]
    fn zone_id_prefix_is_dropped() {
        assert_eq!(parse_zone_id("/hostedzone/Z123").unwrap(), "Z123");
        assert_eq!(parse_zone_id("Z123").unwrap(), "Z123");
        assert!(parse_zone_id("/hostedzone/").is_err());
    }

    #[test]
    fn wake_limits_default_to_off_and_are_range_checked() {
        let base = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                let fixed = [
                    (ASG_NAME, "g"),
                    (ASG_REGION, "eu-west-1"),
                    (METRIC_NAMESPACE, "n"),
                    (METRIC_NAME, "m"),
                    (METRIC_DIMENSIONS, r#"{"a":"b"}"#),
                    (METRIC_VALUE, "1"),
                ];
                fixed
                    .iter()
                    .chain(extra.iter())
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = StartSystemConfig::from_lookup(base(&[])).unwrap();
        assert_eq!((c.wake_cooldown_minutes, c.max_wakes_per_hour), (0, 0));
        let c = StartSystemConfig::from_lookup(base(&[
            (WAKE_COOLDOWN_MINUTES, "30"),
            (MAX_WAKES_PER_HOUR, "4"),
        ]))
        .unwrap();
        assert_eq!((c.wake_cooldown_minutes, c.max_wakes_per_hour), (30, 4));
        let e = StartSystemConfig::from_lookup(base(&[(MAX_WAKES_PER_HOUR, "61")])).unwrap_err();
        assert_eq!(e.invalid[0].name, MAX_WAKES_PER_HOUR);
    }

    #[test]
    fn idle_stop_needs_grace_and_alarm() {
        let e = IdleStopConfig::from_lookup(|name| {
            (name == ASG_NAME || name == ASG_REGION).then(|| "eu-west-1".to_owned())
        })
        .unwrap_err();
        assert_eq!(e.missing, [BOOT_GRACE_MINUTES, ALARM_NAME]);
    }

    #[test]
    fn routes_are_normalised_and_checked() {
        let c = WakeDispatcherConfig::from_lookup(|name| match name {
            ROUTES => Some(r#"{"MC.Example.com.":"rc-mc-start-system"}"#.to_owned()),
            FUNCTION_REGION => Some("us-east-1".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.routes["mc.example.com"], "rc-mc-start-system");
        for bad in [
            "{}",
            "[]",
            r#"{"a.example.com": 1}"#,
            r#"{"a.example.com": ""}"#,
            r#"{"A.example.com": "f", "a.example.com.": "g"}"#,
        ] {
            assert!(parse_routes(bad).is_err(), "{bad}");
        }
        let e = WakeDispatcherConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(e.missing, [ROUTES, FUNCTION_REGION]);
    }

    #[test]
    fn handler_names_round_trip() {
        for kind in HandlerKind::ALL {
            assert_eq!(kind.name().parse::<HandlerKind>(), Ok(kind));
        }
    }
}
