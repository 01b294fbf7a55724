//! `ec2.route-table` ([`reconciler_kinds::ec2::RouteTable`]): `vpcId` (immutable), `routes`
//! [{`destinationCidrBlock`, `gatewayId`}] and `subnetIds` (the explicit associations), both
//! compared as sets. Output `id`. Found by `Name` tag with one `DescribeRouteTables`.
//!
//! Only routes made with `CreateRoute` are managed: the `local` route and propagated routes
//! belong to AWS. Observation reports every managed route whatever its target, so a route
//! added out of band is drift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Route, RouteTable as Ec2RouteTable};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::RouteTable;
use reconciler_render::naming::bounded;
use serde_json::{json, Map, Value};

use super::{
    after_update, create_tags, describe_owned, filter, name_tags, pair_by_name_tag, tag_map,
    tag_spec, unless_gone,
};
use crate::error::{classify, code_of};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, touches};

/// The client of route tables.
pub struct RouteTableClient {
    pool: Arc<ClientPool>,
}

impl RouteTableClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        RouteTableClient { pool }
    }
}

/// A route as the reconciler compares it: (destination key, destination) and targets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteSpec {
    destination: (String, String),
    targets: BTreeMap<String, String>,
}

impl RouteSpec {
    /// A managed route of AWS's answer; `None` for the local and propagated routes.
    fn from_route(r: &Route) -> Option<RouteSpec> {
        match r.origin().map(|o| o.as_str()) {
            Some("CreateRouteTable") | Some("EnableVgwRoutePropagation") => return None,
            _ => {}
        }
        if r.gateway_id() == Some("local") {
            return None;
        }
        let destination = [
            ("destinationCidrBlock", r.destination_cidr_block()),
            ("destinationIpv6CidrBlock", r.destination_ipv6_cidr_block()),
            ("destinationPrefixListId", r.destination_prefix_list_id()),
        ]
        .into_iter()
        .find_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))?;
        let targets = [
            ("gatewayId", r.gateway_id()),
            ("natGatewayId", r.nat_gateway_id()),
            ("transitGatewayId", r.transit_gateway_id()),
            ("vpcPeeringConnectionId", r.vpc_peering_connection_id()),
            // Routes to an instance also name its interface; the interface is what is kept.
            ("networkInterfaceId", r.network_interface_id()),
            (
                "egressOnlyInternetGatewayId",
                r.egress_only_internet_gateway_id(),
            ),
            ("carrierGatewayId", r.carrier_gateway_id()),
            ("localGatewayId", r.local_gateway_id()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect();
        Some(RouteSpec {
            destination,
            targets,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(self.destination.0.clone(), json!(self.destination.1));
        for (k, v) in &self.targets {
            m.insert(k.clone(), json!(v));
        }
        Value::Object(m)
    }
}

/// A desired route, references resolved: an IPv4 block through a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WantedRoute {
    cidr: String,
    gateway: String,
}

impl WantedRoute {
    fn spec(&self) -> RouteSpec {
        RouteSpec {
            destination: ("destinationCidrBlock".into(), self.cidr.clone()),
            targets: BTreeMap::from([("gatewayId".into(), self.gateway.clone())]),
        }
    }
}

fn wanted_routes(props: &RouteTable) -> Result<Vec<WantedRoute>, ProviderError> {
    props
        .routes
        .iter()
        .map(|r| {
            Ok(WantedRoute {
                cidr: r.destination_cidr_block.clone(),
                gateway: r.gateway_id.get("routes/*/gatewayId")?.clone(),
            })
        })
        .collect()
}

fn wanted_subnets(props: &RouteTable) -> Result<Vec<String>, ProviderError> {
    props
        .subnet_ids
        .iter()
        .map(|s| s.get("subnetIds").cloned())
        .collect()
}

/// The owned tables `desired` names.
async fn find(
    ec2: &aws_sdk_ec2::Client,
    desired: &[DesiredResource],
) -> Result<Vec<Ec2RouteTable>, ProviderError> {
    describe_owned(
        "DescribeRouteTables",
        "tag:Name",
        &name_tags(desired),
        |filters| {
            ec2.describe_route_tables()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send()
                .try_collect()
        },
    )
    .await
}

/// A fresh read of one table, for its association ids; `None` when it is gone.
async fn read(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<Option<Ec2RouteTable>, ProviderError> {
    let answer = ec2
        .describe_route_tables()
        .route_table_ids(id)
        .send()
        .await
        .map_err(|e| classify(&format!("DescribeRouteTables {id}"), e));
    Ok(unless_gone(answer)?.and_then(|out| out.route_tables().first().cloned()))
}

fn routes(table: &Ec2RouteTable) -> Vec<RouteSpec> {
    table
        .routes()
        .iter()
        .filter_map(RouteSpec::from_route)
        .collect()
}

/// Explicit subnet associations: subnet id -> association id.
fn associations(table: &Ec2RouteTable) -> BTreeMap<String, String> {
    table
        .associations()
        .iter()
        .filter(|a| a.main() != Some(true))
        .filter(|a| {
            a.association_state()
                .and_then(|s| s.state())
                .is_none_or(|s| matches!(s.as_str(), "associated" | "associating"))
        })
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_string(),
                a.route_table_association_id()?.to_string(),
            ))
        })
        .collect()
}

/// Routes: create the missing, replace those whose target differs, delete the extra.
async fn reconcile_routes(
    ec2: &aws_sdk_ec2::Client,
    table_id: &str,
    desired: &[WantedRoute],
    current: &[RouteSpec],
) -> Result<(), ProviderError> {
    for want in desired {
        let spec = want.spec();
        let what = |call: &str| format!("{call} {table_id} {}", want.cidr);
        match current.iter().find(|c| c.destination == spec.destination) {
            None => {
                ec2.create_route()
                    .route_table_id(table_id)
                    .destination_cidr_block(&want.cidr)
                    .gateway_id(&want.gateway)
                    .send()
                    .await
                    .map_err(|e| classify(&what("CreateRoute"), e))?;
            }
            Some(have) if have.targets != spec.targets => {
                ec2.replace_route()
                    .route_table_id(table_id)
                    .destination_cidr_block(&want.cidr)
                    .gateway_id(&want.gateway)
                    .send()
                    .await
                    .map_err(|e| classify(&what("ReplaceRoute"), e))?;
            }
            Some(_) => {}
        }
    }
    for have in current {
        if desired
            .iter()
            .any(|d| d.spec().destination == have.destination)
        {
            continue;
        }
        delete_route(ec2, table_id, have).await?;
    }
    Ok(())
}

/// Deletes a route by its destination, whichever kind it is; a route gone already is fine.
async fn delete_route(
    ec2: &aws_sdk_ec2::Client,
    table_id: &str,
    route: &RouteSpec,
) -> Result<(), ProviderError> {
    let (key, destination) = &route.destination;
    let call = ec2.delete_route().route_table_id(table_id);
    let call = match key.as_str() {
        "destinationIpv6CidrBlock" => call.destination_ipv6_cidr_block(destination),
        "destinationPrefixListId" => call.destination_prefix_list_id(destination),
        _ => call.destination_cidr_block(destination),
    };
    let deleted = call
        .send()
        .await
        .map_err(|e| classify(&format!("DeleteRoute {table_id} {destination}"), e));
    unless_gone(deleted)?;
    Ok(())
}

/// Associates a subnet. A subnet has one explicit association at most: when another table
/// holds it (say, a table being replaced), the association is moved here.
async fn associate(
    ec2: &aws_sdk_ec2::Client,
    table_id: &str,
    subnet: &str,
) -> Result<(), ProviderError> {
    match ec2
        .associate_route_table()
        .route_table_id(table_id)
        .subnet_id(subnet)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e).as_deref() == Some("Resource.AlreadyAssociated") => {
            move_association(ec2, table_id, subnet).await
        }
        Err(e) => Err(classify(
            &format!("AssociateRouteTable {table_id} {subnet}"),
            e,
        )),
    }
}

/// Moves the association of `subnet` from the table holding it to `table_id`.
async fn move_association(
    ec2: &aws_sdk_ec2::Client,
    table_id: &str,
    subnet: &str,
) -> Result<(), ProviderError> {
    let out = ec2
        .describe_route_tables()
        .filters(filter("association.subnet-id", [subnet]))
        .send()
        .await
        .map_err(|e| classify(&format!("DescribeRouteTables subnet {subnet}"), e))?;
    let assoc = out
        .route_tables()
        .iter()
        .flat_map(|t| t.associations())
        .find(|a| a.subnet_id() == Some(subnet))
        .and_then(|a| Some((a.route_table_id()?, a.route_table_association_id()?)));
    match assoc {
        Some((t, _)) if t == table_id => Ok(()),
        Some((_, assoc)) => {
            ec2.replace_route_table_association()
                .association_id(assoc)
                .route_table_id(table_id)
                .send()
                .await
                .map_err(|e| classify(&format!("ReplaceRouteTableAssociation {assoc}"), e))?;
            Ok(())
        }
        None => Err(ProviderError::conflict(format!(
            "subnet {subnet} is associated elsewhere"
        ))),
    }
}

async fn disassociate(ec2: &aws_sdk_ec2::Client, assoc: &str) -> Result<(), ProviderError> {
    let answer = ec2
        .disassociate_route_table()
        .association_id(assoc)
        .send()
        .await
        .map_err(|e| classify(&format!("DisassociateRouteTable {assoc}"), e));
    unless_gone(answer)?;
    Ok(())
}

/// Brings the explicit associations to `want`, given those of `table`.
async fn reconcile_subnets(
    ec2: &aws_sdk_ec2::Client,
    table: &Ec2RouteTable,
    id: &str,
    want: &BTreeSet<String>,
) -> Result<(), ProviderError> {
    let have = associations(table);
    for subnet in want.iter().filter(|s| !have.contains_key(*s)) {
        associate(ec2, id, subnet).await?;
    }
    for (_, assoc) in have.iter().filter(|(s, _)| !want.contains(*s)) {
        disassociate(ec2, assoc).await?;
    }
    Ok(())
}

#[async_trait]
impl KindClient<RouteTable> for RouteTableClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ec2 = self.pool.ec2(region);
        let found = find(&ec2, desired).await?;
        Ok(pair_by_name_tag(desired, found)
            .into_iter()
            .filter_map(|(d, t)| {
                let id = t.route_table_id()?;
                let mut routes: Vec<Value> = routes(&t).iter().map(RouteSpec::to_json).collect();
                routes.sort_by_key(|r| r.to_string());
                let subnets: Vec<String> = associations(&t).into_keys().collect();
                Some(util::observed(
                    d,
                    json!({ "vpcId": t.vpc_id(), "routes": routes, "subnetIds": subnets }),
                    [("id", json!(id))],
                    tag_map(t.tags()),
                ))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &RouteTable,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let vpc = props.vpc_id.get("vpcId")?;
        let wanted = wanted_routes(props)?;
        let subnets = wanted_subnets(props)?;
        let tags = create_tags(desired);
        // The token ties a retried create to the table an earlier attempt made. It includes
        // the VPC, so a table recreated in a new VPC never gets the old answer.
        let token = bounded(&format!("{}-{vpc}", desired.name), 64);
        let out = ec2
            .create_route_table()
            .vpc_id(vpc)
            .client_token(token)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateRouteTable {}", desired.name), e))?;
        let table = out
            .route_table()
            .ok_or_else(|| ProviderError::transient("CreateRouteTable: the answer has no table"))?;
        let id = table
            .route_table_id()
            .ok_or_else(|| ProviderError::transient("CreateRouteTable: no table id"))?
            .to_string();
        // A retried create gets the same table back, possibly with routes already made.
        reconcile_routes(&ec2, &id, &wanted, &routes(table)).await?;
        let current = associations(table);
        for subnet in subnets.iter().filter(|s| !current.contains_key(*s)) {
            associate(&ec2, &id, subnet).await?;
        }
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("id", json!(id))],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &RouteTable,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        if touches(changes, "routes") || touches(changes, "subnetIds") {
            // Association ids are not part of the observation: read the table again.
            let table = read(&ec2, &id)
                .await?
                .ok_or_else(|| ProviderError::not_found(format!("route table {id} is gone")))?;
            if touches(changes, "routes") {
                reconcile_routes(&ec2, &id, &wanted_routes(props)?, &routes(&table)).await?;
            }
            if touches(changes, "subnetIds") {
                let want: BTreeSet<String> = wanted_subnets(props)?.into_iter().collect();
                reconcile_subnets(&ec2, &table, &id, &want).await?;
            }
        }
        Ok(after_update(desired, observed, changes))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        super::write_tags(&self.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        let Some(table) = read(&ec2, &id).await? else {
            return Ok(());
        };
        for assoc in associations(&table).values() {
            disassociate(&ec2, assoc).await?;
        }
        ec2.delete_route_table()
            .route_table_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteRouteTable {id}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_routes_skip_the_local_route() {
        let local = Route::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .origin(aws_sdk_ec2::types::RouteOrigin::CreateRouteTable)
            .build();
        assert!(RouteSpec::from_route(&local).is_none());
        let igw = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id("igw-1")
            .origin(aws_sdk_ec2::types::RouteOrigin::CreateRoute)
            .build();
        let spec = RouteSpec::from_route(&igw).unwrap();
        assert_eq!(
            spec.to_json(),
            json!({"destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"})
        );
        let props: RouteTable = serde_json::from_value(json!({
            "vpcId": "vpc-1",
            "routes": [{"destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"}],
            "subnetIds": []
        }))
        .unwrap();
        assert_eq!(wanted_routes(&props).unwrap()[0].spec(), spec);
    }
}
