//! AWS's documented API request rates as token buckets, for the fault proxy's rate-limit mode
//! ([`crate::proxy::FaultPlan::rates`]).
//!
//! AWS meters each API by account (and region, for regional services) with token buckets: a
//! bucket holds at most `capacity` tokens (the burst), refills at `refill` tokens a second (the
//! sustained rate), and a request that finds a bucket it draws from empty is throttled. The
//! table [`RULES`] names every rate, where AWS documents it, and which rates are assumed
//! because AWS documents none (10 requests a second per operation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// How far a bucket reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One bucket per account, whatever the region (Route 53, IAM).
    Account,
    /// One bucket per account and region.
    Region,
}

/// Which requests a rule meters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matches {
    /// Every request to the service.
    All,
    /// These operations (as [`RateTable::operation`] names them).
    Operations(&'static [&'static str]),
    /// Every operation but these.
    Except(&'static [&'static str]),
    /// Reads (`Describe*`, `List*`, `Get*`, `Search*`).
    Reads,
    /// EC2 reads made without a filter and without pagination.
    UnfilteredReads,
    /// Everything else: writes.
    Writes,
}

/// Whether matching requests share one bucket or each operation has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucketing {
    /// One bucket for every matching request.
    Shared,
    /// One bucket per operation.
    PerOperation,
}

/// One documented (or assumed) rate.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Signing name of the service (`ec2`, `route53`, `monitoring`, ...).
    pub service: &'static str,
    /// What the rule meters, for the table in the docs.
    pub label: &'static str,
    /// Which requests it meters.
    pub matches: Matches,
    /// Shared or per operation.
    pub bucketing: Bucketing,
    /// Account or account and region.
    pub scope: Scope,
    /// Burst: the bucket's maximum tokens.
    pub capacity: f64,
    /// Sustained rate: tokens added per second.
    pub refill: f64,
    /// Where AWS documents it; empty when assumed.
    pub source: &'static str,
}

impl Rule {
    /// True when AWS documents no rate and the table assumes one.
    pub fn assumed(&self) -> bool {
        self.source.is_empty()
    }
}

const ROUTE53: &str =
    "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/throttling-api-requests.html";
const EC2: &str = "https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html";
const LAMBDA: &str = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html";
const CLOUDWATCH: &str =
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html";
const ECS: &str =
    "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html";

/// An assumed rate: 10 requests a second per operation, no burst beyond one second's worth.
const fn assumed(service: &'static str, scope: Scope) -> Rule {
    Rule {
        service,
        label: "each operation (not documented: assumed)",
        matches: Matches::All,
        bucketing: Bucketing::PerOperation,
        scope,
        capacity: 10.0,
        refill: 10.0,
        source: "",
    }
}

const fn cloudwatch(ops: &'static [&'static str], rate: f64) -> Rule {
    Rule {
        service: "monitoring",
        label: "",
        matches: Matches::Operations(ops),
        bucketing: Bucketing::PerOperation,
        scope: Scope::Region,
        capacity: rate,
        refill: rate,
        source: CLOUDWATCH,
    }
}

/// Every rate the proxy applies. A request draws a token from every bucket of every rule of its
/// service that matches it, except that among per-operation rules only the first match counts
/// (a specific rate overrides the service's default). Where AWS documents a rate per second
/// without a burst, the burst is one second's worth.
pub const RULES: &[Rule] = &[
    Rule {
        service: "route53",
        label: "all operations together",
        matches: Matches::All,
        bucketing: Bucketing::Shared,
        scope: Scope::Account,
        capacity: 50.0,
        refill: 10.0,
        source: ROUTE53,
    },
    Rule {
        service: "route53",
        label: "CreateHostedZone",
        matches: Matches::Operations(&["CreateHostedZone"]),
        bucketing: Bucketing::PerOperation,
        scope: Scope::Account,
        capacity: 40.0,
        refill: 2.0,
        source: ROUTE53,
    },
    Rule {
        service: "route53",
        label: "DeleteHostedZone",
        matches: Matches::Operations(&["DeleteHostedZone"]),
        bucketing: Bucketing::PerOperation,
        scope: Scope::Account,
        capacity: 40.0,
        refill: 5.0,
        source: ROUTE53,
    },
    Rule {
        service: "ec2",
        label: "each unfiltered and unpaginated read",
        matches: Matches::UnfilteredReads,
        bucketing: Bucketing::PerOperation,
        scope: Scope::Region,
        capacity: 50.0,
        refill: 10.0,
        source: EC2,
    },
    Rule {
        service: "ec2",
        label: "each read (Describe*, List*, Get*, Search*)",
        matches: Matches::Reads,
        bucketing: Bucketing::PerOperation,
        scope: Scope::Region,
        capacity: 100.0,
        refill: 20.0,
        source: EC2,
    },
    Rule {
        service: "ec2",
        label: "each mutating operation",
        matches: Matches::Writes,
        bucketing: Bucketing::PerOperation,
        scope: Scope::Region,
        capacity: 50.0,
        refill: 5.0,
        source: EC2,
    },
    Rule {
        service: "lambda",
        label: "GetFunction",
        matches: Matches::Operations(&["GetFunction"]),
        bucketing: Bucketing::PerOperation,
        scope: Scope::Region,
        capacity: 100.0,
        refill: 100.0,
        source: LAMBDA,
    },
    Rule {
        service: "lambda",
        label: "GetPolicy",
        matches: Matches::Operations(&["GetPolicy"]),
        bucketing: Bucketing::PerOperation,
        scope: Scope::Region,
        capacity: 15.0,
        refill: 15.0,
        source: LAMBDA,
    },
    Rule {
        service: "lambda",
        label: "every other control plane operation, together",
        matches: Matches::Except(&["GetFunction", "GetPolicy"]),
        bucketing: Bucketing::Shared,
        scope: Scope::Region,
        capacity: 15.0,
        refill: 15.0,
        source: LAMBDA,
    },
    Rule {
        label: "DescribeAlarms",
        ..cloudwatch(&["DescribeAlarms"], 9.0)
    },
    Rule {
        label: "PutMetricAlarm, DeleteAlarms",
        ..cloudwatch(&["PutMetricAlarm", "DeleteAlarms"], 3.0)
    },
    Rule {
        label: "TagResource, UntagResource, DescribeAlarmHistory",
        ..cloudwatch(
            &["TagResource", "UntagResource", "DescribeAlarmHistory"],
            20.0,
        )
    },
    Rule {
        label: "GetDashboard, PutDashboard, ListDashboards, DeleteDashboards, ListTagsForResource",
        ..cloudwatch(
            &[
                "GetDashboard",
                "PutDashboard",
                "ListDashboards",
                "DeleteDashboards",
                "ListTagsForResource",
            ],
            10.0,
        )
    },
    Rule {
        service: "ecs",
        label: "each read (Describe*, List*)",
        matches: Matches::Reads,
        bucketing: Bucketing::PerOperation,
        scope: Scope::Region,
        capacity: 50.0,
        refill: 20.0,
        source: ECS,
    },
    assumed("monitoring", Scope::Region),
    assumed("ecs", Scope::Region),
    assumed("logs", Scope::Region),
    assumed("ssm", Scope::Region),
    assumed("iam", Scope::Account),
    assumed("sns", Scope::Region),
    assumed("events", Scope::Region),
    assumed("autoscaling", Scope::Region),
    assumed("elasticfilesystem", Scope::Region),
    assumed("backup", Scope::Region),
    assumed("tagging", Scope::Region),
    assumed("sts", Scope::Region),
];

/// What the proxy knows of a request when it picks its buckets.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Signing name of the service.
    pub service: &'a str,
    /// Operation, as [`RateTable::operation`] names it.
    pub operation: &'a str,
    /// Account the request acts in.
    pub account: &'a str,
    /// Region of its signature.
    pub region: &'a str,
    /// Whether it only reads.
    pub read: bool,
    /// The query body of an EC2 request, to tell a filtered or paginated read.
    pub body: &'a [u8],
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    refill: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(capacity: f64, refill: f64, now: Instant) -> Self {
        Bucket {
            capacity,
            refill,
            tokens: capacity,
            at: now,
        }
    }

    /// Tokens held at `now`, refilled since the last look.
    pub fn tokens(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill).min(self.capacity);
        self.at = now.max(self.at);
        self.tokens
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// The calls one bucket let through, and the least time its rate needs for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// The bucket: account, region, service, rule and operation.
    pub bucket: String,
    /// Signing name of the service.
    pub service: &'static str,
    /// Requests admitted.
    pub calls: u64,
    /// The bucket's sustained rate.
    pub refill: f64,
}

impl Demand {
    /// Seconds the bucket's rate needs for its calls (`calls / refill`).
    pub fn seconds(&self) -> f64 {
        self.calls as f64 / self.refill
    }
}

/// The buckets of one proxy: [`RULES`], optionally scaled, with their state and the calls each
/// admitted.
#[derive(Debug)]
pub struct RateTable {
    scale: f64,
    buckets: Mutex<HashMap<String, (Bucket, &'static Rule, u64)>>,
}

impl RateTable {
    /// AWS's rates as documented.
    pub fn aws() -> Self {
        Self::scaled(1.0)
    }

    /// AWS's rates times `factor` (burst and refill alike). `0.0` throttles every request,
    /// which shows each protocol's throttling answer.
    pub fn scaled(factor: f64) -> Self {
        RateTable {
            scale: factor,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rules that meter `call`: every shared rule that matches, and the first matching
    /// per-operation rule.
    pub fn rules_for(call: &Call<'_>) -> Vec<&'static Rule> {
        let mut per_operation = false;
        RULES
            .iter()
            .filter(|rule| rule.service == call.service && matches(rule.matches, call))
            .filter(|rule| match rule.bucketing {
                Bucketing::Shared => true,
                Bucketing::PerOperation => !std::mem::replace(&mut per_operation, true),
            })
            .collect()
    }

    /// Takes a token from every bucket `call` draws from, or from none and answers false when
    /// one of them is empty (the request is throttled).
    pub fn admit(&self, call: &Call<'_>, now: Instant) -> bool {
        let keys: Vec<(String, &Rule)> = Self::rules_for(call)
            .into_iter()
            .map(|rule| (bucket_key(rule, call), rule))
            .collect();
        let mut buckets = self.buckets.lock().expect("rate buckets");
        let mut admitted = true;
        for (key, rule) in &keys {
            let (bucket, _, _) = buckets.entry(key.clone()).or_insert_with(|| {
                let bucket = Bucket::new(rule.capacity * self.scale, rule.refill * self.scale, now);
                (bucket, rule, 0)
            });
            admitted &= bucket.tokens(now) >= 1.0;
        }
        if admitted {
            for (key, _) in &keys {
                let (bucket, _, calls) = buckets.get_mut(key).expect("bucket made above");
                bucket.take();
                *calls += 1;
            }
        }
        admitted
    }

    /// Every bucket used so far with the calls it admitted, the slowest first.
    pub fn demand(&self) -> Vec<Demand> {
        let buckets = self.buckets.lock().expect("rate buckets");
        let mut out: Vec<Demand> = buckets
            .iter()
            .map(|(key, (_, rule, calls))| Demand {
                bucket: key.clone(),
                service: rule.service,
                calls: *calls,
                refill: rule.refill,
            })
            .collect();
        out.sort_by(|a, b| b.seconds().total_cmp(&a.seconds()));
        out
    }

    /// The operation name the rules use: the request's own for RPC protocols, and for the
    /// REST services whose rates differ per operation (Lambda, Route 53) the name of the
    /// operation its method and path call; `fallback` (the proxy's label) otherwise.
    pub fn operation(service: &str, method: &str, path: &str, fallback: &str) -> String {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let named = match (service, method, segments.as_slice()) {
            ("lambda", "GET", [_, "functions", _]) => Some("GetFunction"),
            ("lambda", "GET", [_, "functions", _, "policy"]) => Some("GetPolicy"),
            ("route53", "POST", [_, "hostedzone"]) => Some("CreateHostedZone"),
            ("route53", "DELETE", [_, "hostedzone", _]) => Some("DeleteHostedZone"),
            _ => None,
        };
        named.map_or_else(|| fallback.to_string(), str::to_string)
    }
}

fn matches(m: Matches, call: &Call<'_>) -> bool {
    match m {
        Matches::All => true,
        Matches::Operations(ops) => ops.contains(&call.operation),
        Matches::Except(ops) => !ops.contains(&call.operation),
        Matches::Reads => call.read,
        Matches::UnfilteredReads => call.read && !filtered_or_paginated(call.body),
        Matches::Writes => !call.read,
    }
}

/// An EC2 query read names a filter, a page size or token, or the ids it wants.
fn filtered_or_paginated(body: &[u8]) -> bool {
    let body = String::from_utf8_lossy(body);
    body.split('&').any(|kv| {
        let key = kv.split('=').next().unwrap_or_default();
        key.starts_with("Filter.")
            || key == "MaxResults"
            || key == "NextToken"
            || key.contains("Id.")
            || key.contains("Name.")
    })
}

fn bucket_key(rule: &Rule, call: &Call<'_>) -> String {
    let scope = match rule.scope {
        Scope::Account => call.account.to_string(),
        Scope::Region => format!("{}/{}", call.account, call.region),
    };
    match rule.bucketing {
        Bucketing::Shared => format!("{scope}|{}|{}", rule.service, rule.label),
        Bucketing::PerOperation => {
            format!("{scope}|{}|{}|{}", rule.service, rule.label, call.operation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call<'a>(service: &'a str, operation: &'a str, read: bool) -> Call<'a> {
        Call {
            service,
            operation,
            account: "123456789012",
            region: "eu-west-1",
            read,
            body: b"",
        }
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_capacity() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 2.0, t0);
        for _ in 0..10 {
            b.take();
        }
        assert_eq!(b.tokens(t0), 0.0);
        assert!((b.tokens(t0 + Duration::from_millis(1500)) - 3.0).abs() < 1e-9);
        assert_eq!(b.tokens(t0 + Duration::from_secs(60)), 10.0);
    }

    #[test]
    fn route53_meters_the_whole_account_at_ten_a_second_after_a_burst_of_fifty() {
        let table = RateTable::aws();
        let t0 = Instant::now();
        let list = call("route53", "GET /2013-04-01/hostedzone", true);
        let admitted = (0..60).filter(|_| table.admit(&list, t0)).count();
        assert_eq!(admitted, 50);
        let demand = table.demand();
        assert_eq!(demand.len(), 1);
        assert_eq!((demand[0].calls, demand[0].seconds()), (50, 5.0));
        // Other operations of the account share the bucket, in every region.
        let other = Call {
            region: "us-west-2",
            ..call("route53", "POST /2013-04-01/hostedzone", false)
        };
        assert!(!table.admit(&other, t0));
        let later = t0 + Duration::from_millis(1000);
        let admitted = (0..20).filter(|_| table.admit(&list, later)).count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn lambda_shares_one_control_plane_bucket_but_get_policy_has_its_own() {
        let t0 = Instant::now();
        let table = RateTable::aws();
        let tags = call("lambda", "GET /2017-03-31/tags", true);
        assert_eq!((0..30).filter(|_| table.admit(&tags, t0)).count(), 15);
        let create = call("lambda", "CreateFunction", false);
        assert!(!table.admit(&create, t0), "shared with ListTags");
        let policy = call("lambda", "GetPolicy", true);
        assert_eq!((0..30).filter(|_| table.admit(&policy, t0)).count(), 15);
        assert_eq!(
            RateTable::operation("lambda", "GET", "/2015-03-31/functions/f/policy", "x"),
            "GetPolicy"
        );
        assert_eq!(
            RateTable::operation("lambda", "GET", "/2015-03-31/functions/f", "x"),
            "GetFunction"
        );
    }

    #[test]
    fn ec2_reads_draw_from_the_smaller_bucket_only_unfiltered() {
        let filtered = Call {
            body: b"Action=DescribeVpcs&Filter.1.Name=tag%3Aowner",
            ..call("ec2", "DescribeVpcs", true)
        };
        let bare = Call {
            body: b"Action=DescribeVpcs&Version=2016-11-15",
            ..call("ec2", "DescribeVpcs", true)
        };
        let capacity = |c: &Call<'_>| RateTable::rules_for(c)[0].capacity;
        assert_eq!(capacity(&filtered), 100.0);
        assert_eq!(capacity(&bare), 50.0);
        assert_eq!(RateTable::rules_for(&bare).len(), 1);
        assert_eq!(capacity(&call("ec2", "CreateVpc", false)), 50.0);
        assert_eq!(
            RateTable::rules_for(&call("ec2", "CreateVpc", false))[0].refill,
            5.0
        );
    }

    #[test]
    fn a_documented_rate_overrides_the_assumed_default() {
        let rules = RateTable::rules_for(&call("monitoring", "PutMetricAlarm", false));
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].refill, 3.0);
        let rules = RateTable::rules_for(&call("monitoring", "GetMetricData", true));
        assert!(rules[0].assumed());
        for service in [
            "ec2",
            "route53",
            "lambda",
            "monitoring",
            "ecs",
            "logs",
            "ssm",
            "iam",
            "sns",
            "events",
            "autoscaling",
            "elasticfilesystem",
            "backup",
            "tagging",
            "sts",
        ] {
            assert!(
                !RateTable::rules_for(&call(service, "AnyOperation", false)).is_empty(),
                "{service} has a rate"
            );
        }
    }

    #[test]
    fn a_zero_scale_throttles_everything() {
        let table = RateTable::scaled(0.0);
        assert!(!table.admit(&call("sts", "GetCallerIdentity", true), Instant::now()));
    }
}
