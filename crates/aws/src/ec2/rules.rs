//! Security group rules as the reconciler compares them, shared by the kinds that hold a
//! group's complete rule sets: read in one `DescribeSecurityGroupRules` for many groups, and
//! brought to the desired sets rule by rule.
//!
//! A rule is {`ipProtocol` (lower case; `-1` for all), `fromPort`, `toPort` (absent for `-1`),
//! one of `cidrIpv4` | `cidrIpv6` | `sourceSecurityGroupId` | `prefixListId`, `description`}.
//! Missing rules are authorized, extra ones revoked by rule id, and rules that differ only in
//! their description are modified in place, so traffic is never cut while a description
//! changes.

use std::collections::HashMap;

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, SecurityGroup, SecurityGroupRule,
    SecurityGroupRuleRequest, SecurityGroupRuleUpdate, UserIdGroupPair,
};
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::DesiredResource;
use reconciler_engine::provider::ProviderError;
use serde_json::{json, Map, Value};

use super::describe_filtered;
use crate::error::classify;
use crate::util::touches;

/// The peer of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Peer {
    Cidr4(String),
    Cidr6(String),
    Group(String),
    PrefixList(String),
}

/// What identifies a rule in AWS: protocol, ports and peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct RuleKey {
    pub(super) protocol: String,
    pub(super) from: Option<i32>,
    pub(super) to: Option<i32>,
    pub(super) peer: Peer,
}

/// A normalised rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    pub(super) key: RuleKey,
    pub(super) description: Option<String>,
    /// The AWS rule id (observed rules only).
    pub(super) id: Option<String>,
}

/// Lower-case protocol names; the numbers AWS also accepts become their names.
fn normalise_protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        "all" => "-1".into(),
        other => other.to_string(),
    }
}

/// Ports as compared: none for "all protocols", and none for protocols without ports, for
/// which AWS answers `-1`.
fn normalise_ports(
    protocol: &str,
    from: Option<i32>,
    to: Option<i32>,
) -> (Option<i32>, Option<i32>) {
    match protocol {
        "-1" => (None, None),
        "tcp" | "udp" | "icmp" | "icmpv6" => (from, to),
        _ if from.unwrap_or(-1) == -1 && to.unwrap_or(-1) == -1 => (None, None),
        _ => (from, to),
    }
}

impl Rule {
    /// A desired rule (references resolved); `None` when it names no peer.
    fn from_kind(rule: &reconciler_kinds::ec2::Rule) -> Result<Option<Rule>, ProviderError> {
        let protocol = normalise_protocol(&rule.ip_protocol);
        let (from, to) = normalise_ports(&protocol, rule.from_port, rule.to_port);
        let peer = match (&rule.cidr_ipv4, &rule.source_security_group_id) {
            (Some(cidr), _) => Peer::Cidr4(cidr.clone()),
            (None, Some(group)) => Peer::Group(group.get("sourceSecurityGroupId")?.clone()),
            (None, None) => return Ok(None),
        };
        Ok(Some(Rule {
            key: RuleKey {
                protocol,
                from,
                to,
                peer,
            },
            description: rule.description.clone().filter(|d| !d.is_empty()),
            id: None,
        }))
    }

    fn from_aws(r: &SecurityGroupRule) -> Option<Rule> {
        let protocol = normalise_protocol(r.ip_protocol()?);
        let (from, to) = normalise_ports(&protocol, r.from_port(), r.to_port());
        let peer = if let Some(c) = r.cidr_ipv4() {
            Peer::Cidr4(c.to_string())
        } else if let Some(c) = r.cidr_ipv6() {
            Peer::Cidr6(c.to_string())
        } else if let Some(g) = r.referenced_group_info().and_then(|g| g.group_id()) {
            Peer::Group(g.to_string())
        } else {
            Peer::PrefixList(r.prefix_list_id()?.to_string())
        };
        Some(Rule {
            key: RuleKey {
                protocol,
                from,
                to,
                peer,
            },
            description: r
                .description()
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            id: r.security_group_rule_id().map(str::to_string),
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ipProtocol".into(), json!(self.key.protocol));
        if let Some(f) = self.key.from {
            m.insert("fromPort".into(), json!(f));
        }
        if let Some(t) = self.key.to {
            m.insert("toPort".into(), json!(t));
        }
        let (k, v) = match &self.key.peer {
            Peer::Cidr4(c) => ("cidrIpv4", c),
            Peer::Cidr6(c) => ("cidrIpv6", c),
            Peer::Group(g) => ("sourceSecurityGroupId", g),
            Peer::PrefixList(p) => ("prefixListId", p),
        };
        m.insert(k.into(), json!(v));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        Value::Object(m)
    }

    /// The rule as an `IpPermission` (for Authorize).
    fn to_permission(&self) -> IpPermission {
        let mut p = IpPermission::builder()
            .ip_protocol(&self.key.protocol)
            .set_from_port(self.key.from)
            .set_to_port(self.key.to);
        let d = self.description.clone();
        p = match &self.key.peer {
            Peer::Cidr4(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).set_description(d).build()),
            Peer::Cidr6(c) => {
                p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).set_description(d).build())
            }
            Peer::Group(g) => p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .set_description(d)
                    .build(),
            ),
            Peer::PrefixList(l) => p.prefix_list_ids(
                PrefixListId::builder()
                    .prefix_list_id(l)
                    .set_description(d)
                    .build(),
            ),
        };
        p.build()
    }

    /// The rule as a `SecurityGroupRuleRequest` (for Modify, which needs ports even for
    /// "all protocols": -1).
    fn to_request(&self) -> SecurityGroupRuleRequest {
        let mut r = SecurityGroupRuleRequest::builder()
            .ip_protocol(&self.key.protocol)
            .from_port(self.key.from.unwrap_or(-1))
            .to_port(self.key.to.unwrap_or(-1))
            .set_description(self.description.clone());
        r = match &self.key.peer {
            Peer::Cidr4(c) => r.cidr_ipv4(c),
            Peer::Cidr6(c) => r.cidr_ipv6(c),
            Peer::Group(g) => r.referenced_group_id(g),
            Peer::PrefixList(l) => r.prefix_list_id(l),
        };
        r.build()
    }
}

/// Ingress and egress rules of one group.
#[derive(Debug, Default, Clone)]
pub(super) struct GroupRules {
    pub(super) ingress: Vec<Rule>,
    pub(super) egress: Vec<Rule>,
}

/// Rules in the desired shape, in a stable order (the kinds compare them as sets).
pub(super) fn sorted_json(rules: &[Rule]) -> Value {
    let mut rules = rules.to_vec();
    rules.sort_by(|a, b| a.key.cmp(&b.key));
    Value::Array(rules.iter().map(Rule::to_json).collect())
}

/// The desired rules of one direction, `key` (`ingress` or `egress`), references resolved.
pub(super) fn desired_rules(
    desired: &DesiredResource,
    key: &str,
    wanted: &[reconciler_kinds::ec2::Rule],
) -> Result<Vec<Rule>, ProviderError> {
    let mut rules: Vec<Rule> = Vec::new();
    for item in wanted {
        let rule = Rule::from_kind(item)?.ok_or_else(|| {
            ProviderError::terminal(format!(
                "{}: a rule of `{key}` needs ipProtocol and one of cidrIpv4, cidrIpv6, sourceSecurityGroupId, prefixListId: {}",
                desired.id,
                json!(item)
            ))
        })?;
        // Two desired rules with one key are one AWS rule.
        if !rules.iter().any(|r| r.key == rule.key) {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// The rules one permission of `DescribeSecurityGroups` holds: one per peer (no rule ids).
fn rules_of_permission(permission: &IpPermission) -> Vec<Rule> {
    let protocol = normalise_protocol(permission.ip_protocol().unwrap_or_default());
    let (from, to) = normalise_ports(&protocol, permission.from_port(), permission.to_port());
    let rule = |peer: Peer, description: Option<&str>| Rule {
        key: RuleKey {
            protocol: protocol.clone(),
            from,
            to,
            peer,
        },
        description: description.filter(|d| !d.is_empty()).map(str::to_string),
        id: None,
    };
    let v4 = permission.ip_ranges().iter().filter_map(|r| {
        let cidr = r.cidr_ip()?.to_string();
        Some(rule(Peer::Cidr4(cidr), r.description()))
    });
    let v6 = permission.ipv6_ranges().iter().filter_map(|r| {
        let cidr = r.cidr_ipv6()?.to_string();
        Some(rule(Peer::Cidr6(cidr), r.description()))
    });
    let groups = permission.user_id_group_pairs().iter().filter_map(|p| {
        let group = p.group_id()?.to_string();
        Some(rule(Peer::Group(group), p.description()))
    });
    let lists = permission.prefix_list_ids().iter().filter_map(|l| {
        let list = l.prefix_list_id()?.to_string();
        Some(rule(Peer::PrefixList(list), l.description()))
    });
    v4.chain(v6).chain(groups).chain(lists).collect()
}

/// A group's rules as `DescribeSecurityGroups` lists them in its permissions: what
/// observation needs, without the rule ids that changing them takes (see [`read_rules`]).
pub(super) fn permission_rules(group: &SecurityGroup) -> GroupRules {
    GroupRules {
        ingress: group
            .ip_permissions()
            .iter()
            .flat_map(rules_of_permission)
            .collect(),
        egress: group
            .ip_permissions_egress()
            .iter()
            .flat_map(rules_of_permission)
            .collect(),
    }
}

/// The description of a group-referencing rule, read from the group's permissions.
///
/// The emulator leaves `Description` out of `DescribeSecurityGroupRules` for rules whose peer
/// is a security group (it keeps it only in `DescribeSecurityGroups`). AWS fills both, so on
/// AWS this finds the same value; it only matters when the rule list has none.
fn permission_description(group: &SecurityGroup, egress: bool, rule: &Rule) -> Option<String> {
    if !matches!(rule.key.peer, Peer::Group(_)) {
        return None;
    }
    let rules = permission_rules(group);
    let listed = if egress { rules.egress } else { rules.ingress };
    listed.into_iter().find(|r| r.key == rule.key)?.description
}

/// The rules of the given groups, in one `DescribeSecurityGroupRules` call (per 200 groups,
/// plus pagination). `groups` supplies descriptions the rule list lacks.
pub(super) async fn read_rules(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
    groups: &[SecurityGroup],
) -> Result<HashMap<String, GroupRules>, ProviderError> {
    let rules: Vec<SecurityGroupRule> =
        describe_filtered("DescribeSecurityGroupRules", "group-id", ids, |filters| {
            ec2.describe_security_group_rules()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send()
                .try_collect()
        })
        .await?;
    let mut out: HashMap<String, GroupRules> = HashMap::new();
    for r in &rules {
        let (Some(group_id), Some(mut rule)) = (r.group_id(), Rule::from_aws(r)) else {
            continue;
        };
        let egress = r.is_egress().unwrap_or(false);
        if rule.description.is_none() {
            if let Some(g) = groups.iter().find(|g| g.group_id() == Some(group_id)) {
                rule.description = permission_description(g, egress, &rule);
            }
        }
        let entry = out.entry(group_id.to_string()).or_default();
        if egress {
            entry.egress.push(rule);
        } else {
            entry.ingress.push(rule);
        }
    }
    Ok(out)
}

/// The rules of one group, read afresh.
pub(super) async fn read_group_rules(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    groups: &[SecurityGroup],
) -> Result<GroupRules, ProviderError> {
    Ok(read_rules(ec2, &[id.to_string()], groups)
        .await?
        .remove(id)
        .unwrap_or_default())
}

/// Brings the rules of group `id` to the desired `ingress` and `egress` in the directions
/// `changes` touch, reading them afresh first: rule ids are not part of an observation, and the
/// rules may have moved since the plan. No call when neither direction changed. Both kinds of
/// security group update their rules this way.
pub(super) async fn converge_rules(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    desired: &DesiredResource,
    changes: &[FieldChange],
    ingress: &[reconciler_kinds::ec2::Rule],
    egress: &[reconciler_kinds::ec2::Rule],
) -> Result<(), ProviderError> {
    let ingress = touches(changes, "ingress")
        .then(|| desired_rules(desired, "ingress", ingress))
        .transpose()?;
    let egress = touches(changes, "egress")
        .then(|| desired_rules(desired, "egress", egress))
        .transpose()?;
    if ingress.is_none() && egress.is_none() {
        return Ok(());
    }
    // The group too, for the descriptions the rule list may lack.
    let groups = ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(|e| classify(&format!("DescribeSecurityGroups {id}"), e))?;
    let current = read_group_rules(ec2, id, groups.security_groups()).await?;
    reconcile_rules(ec2, id, ingress.as_deref(), egress.as_deref(), &current).await
}

/// What to change in one direction of a group: rules to authorize, descriptions to modify,
/// rule ids to revoke.
struct Delta {
    add: Vec<IpPermission>,
    modify: Vec<SecurityGroupRuleUpdate>,
    revoke: Vec<String>,
}

fn delta(want: &[Rule], have: &[Rule]) -> Delta {
    let add = want
        .iter()
        .filter(|w| !have.iter().any(|h| h.key == w.key))
        .map(Rule::to_permission)
        .collect();
    let modify = want
        .iter()
        .filter_map(|w| {
            let h = have.iter().find(|h| h.key == w.key)?;
            let id = h.id.as_ref().filter(|_| h.description != w.description)?;
            Some(
                SecurityGroupRuleUpdate::builder()
                    .security_group_rule_id(id)
                    .security_group_rule(w.to_request())
                    .build(),
            )
        })
        .collect();
    let revoke = have
        .iter()
        .filter(|h| !want.iter().any(|w| w.key == h.key))
        .filter_map(|h| h.id.clone())
        .collect();
    Delta {
        add,
        modify,
        revoke,
    }
}

/// Brings one group's rules to the desired lists (`None`: that direction is left alone).
/// Order: authorize what is new, modify descriptions, then revoke what is left over, so a
/// rule being replaced never leaves a gap.
pub(super) async fn reconcile_rules(
    ec2: &aws_sdk_ec2::Client,
    group_id: &str,
    ingress: Option<&[Rule]>,
    egress: Option<&[Rule]>,
    current: &GroupRules,
) -> Result<(), ProviderError> {
    let none = || Delta {
        add: Vec::new(),
        modify: Vec::new(),
        revoke: Vec::new(),
    };
    let inbound = ingress.map_or_else(none, |want| delta(want, &current.ingress));
    let outbound = egress.map_or_else(none, |want| delta(want, &current.egress));
    if !inbound.add.is_empty() {
        ec2.authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(inbound.add))
            .send()
            .await
            .map_err(|e| classify(&format!("AuthorizeSecurityGroupIngress {group_id}"), e))?;
    }
    if !outbound.add.is_empty() {
        ec2.authorize_security_group_egress()
            .group_id(group_id)
            .set_ip_permissions(Some(outbound.add))
            .send()
            .await
            .map_err(|e| classify(&format!("AuthorizeSecurityGroupEgress {group_id}"), e))?;
    }
    let modify: Vec<SecurityGroupRuleUpdate> =
        inbound.modify.into_iter().chain(outbound.modify).collect();
    if !modify.is_empty() {
        ec2.modify_security_group_rules()
            .group_id(group_id)
            .set_security_group_rules(Some(modify))
            .send()
            .await
            .map_err(|e| classify(&format!("ModifySecurityGroupRules {group_id}"), e))?;
    }
    if !inbound.revoke.is_empty() {
        ec2.revoke_security_group_ingress()
            .group_id(group_id)
            .set_security_group_rule_ids(Some(inbound.revoke))
            .send()
            .await
            .map_err(|e| classify(&format!("RevokeSecurityGroupIngress {group_id}"), e))?;
    }
    if !outbound.revoke.is_empty() {
        ec2.revoke_security_group_egress()
            .group_id(group_id)
            .set_security_group_rule_ids(Some(outbound.revoke))
            .send()
            .await
            .map_err(|e| classify(&format!("RevokeSecurityGroupEgress {group_id}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_rule(value: Value) -> reconciler_kinds::ec2::Rule {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rules_normalise_both_ways() {
        let all = Rule::from_kind(&kind_rule(
            json!({"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(all.key.from, None);
        assert_eq!(
            all.to_json(),
            json!({"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"})
        );
        let aws = SecurityGroupRule::builder()
            .ip_protocol("-1")
            .from_port(-1)
            .to_port(-1)
            .cidr_ipv4("0.0.0.0/0")
            .security_group_rule_id("sgr-1")
            .build();
        let observed = Rule::from_aws(&aws).unwrap();
        assert_eq!(observed.key, all.key);
        assert_eq!(observed.id.as_deref(), Some("sgr-1"));

        let tcp = Rule::from_kind(&kind_rule(json!({
            "ipProtocol": "TCP", "fromPort": 22, "toPort": 22,
            "sourceSecurityGroupId": "sg-1", "description": "ssh"
        })))
        .unwrap()
        .unwrap();
        assert_eq!(tcp.key.protocol, "tcp");
        assert_eq!(tcp.key.peer, Peer::Group("sg-1".into()));
        let numbered = kind_rule(
            json!({"ipProtocol": "6", "fromPort": 1, "toPort": 2, "cidrIpv4": "10.0.0.0/8"}),
        );
        assert_eq!(
            Rule::from_kind(&numbered).unwrap().unwrap().key.protocol,
            "tcp"
        );
        // ESP has no ports; AWS answers -1.
        assert_eq!(normalise_ports("50", Some(-1), Some(-1)), (None, None));
        let peerless = kind_rule(json!({"ipProtocol": "tcp", "fromPort": 1, "toPort": 1}));
        assert!(Rule::from_kind(&peerless).unwrap().is_none());
        let d = DesiredResource::new("ec2.security-group", "g", "eu-west-1", "g");
        let err = desired_rules(&d, "ingress", &[peerless]).unwrap_err();
        assert!(err.message.contains("a rule of `ingress` needs"), "{err}");
    }

    #[test]
    fn permissions_read_as_rules_one_per_peer() {
        let group = SecurityGroup::builder()
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
                    .build(),
            )
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(2049)
                    .to_port(2049)
                    .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
                    .ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6("::/0")
                            .description("v6")
                            .build(),
                    )
                    .build(),
            )
            .ip_permissions_egress(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .from_port(-1)
                    .to_port(-1)
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .build();
        let rules = permission_rules(&group);
        assert_eq!(
            sorted_json(&rules.ingress),
            json!([
                {"ipProtocol": "-1", "sourceSecurityGroupId": "sg-1"},
                {"ipProtocol": "tcp", "fromPort": 2049, "toPort": 2049, "cidrIpv4": "10.0.0.0/16"},
                {"ipProtocol": "tcp", "fromPort": 2049, "toPort": 2049, "cidrIpv6": "::/0", "description": "v6"}
            ])
        );
        assert_eq!(
            sorted_json(&rules.egress),
            json!([{"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"}])
        );
    }

    #[test]
    fn deltas_add_modify_and_revoke_by_key() {
        let rule = |port: i32, description: Option<&str>, id: Option<&str>| Rule {
            key: RuleKey {
                protocol: "tcp".into(),
                from: Some(port),
                to: Some(port),
                peer: Peer::Cidr4("0.0.0.0/0".into()),
            },
            description: description.map(str::to_string),
            id: id.map(str::to_string),
        };
        let want = [rule(22, Some("ssh"), None), rule(80, None, None)];
        let have = [
            rule(22, Some("old"), Some("sgr-22")),
            rule(443, None, Some("sgr-443")),
        ];
        let d = delta(&want, &have);
        assert_eq!(d.add.len(), 1);
        assert_eq!(d.add[0].from_port(), Some(80));
        assert_eq!(d.modify.len(), 1);
        assert_eq!(d.modify[0].security_group_rule_id(), Some("sgr-22"));
        assert_eq!(d.revoke, vec!["sgr-443".to_string()]);
        let none = delta(&[], &[]);
        assert!(none.add.is_empty() && none.modify.is_empty() && none.revoke.is_empty());
    }
}
