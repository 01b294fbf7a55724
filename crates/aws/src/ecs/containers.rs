//! Container definitions and volumes between the desired JSON (`RegisterTaskDefinition`'s
//! shape, camelCase) and the SDK's types, for the task definition client.
//!
//! Container definitions may hold environment values that are sensitive: errors name key
//! paths only, never values.

use std::collections::HashMap;

use aws_sdk_ecs::types::{
    ContainerDefinition, HostVolumeProperties, KeyValuePair, LogConfiguration, LogDriver,
    MountPoint, PortMapping, Secret, TransportProtocol, Volume,
};
use serde_json::{json, Map, Value};

/// Container definition keys this provider manages (the ones render sets). Any other key is
/// refused rather than silently dropped.
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "essential",
    "memoryReservation",
    "portMappings",
    "environment",
    "secrets",
    "mountPoints",
    "privileged",
    "logConfiguration",
];

/// Reads a property that must be an array of objects.
fn objects<'a>(v: Option<&'a Value>, at: &str) -> Result<Vec<&'a Map<String, Value>>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_object()
                    .ok_or_else(|| format!("{at}/{i} is not an object"))
            })
            .collect(),
        Some(_) => Err(format!("{at} is not a list")),
    }
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn get_i32(m: &Map<String, Value>, k: &str, at: &str) -> Result<Option<i32>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{at}/{k} is not an integer")),
    }
}

/// One desired container definition as the SDK type. Errors name key paths only, never values.
pub(super) fn container_definition(i: usize, v: &Value) -> Result<ContainerDefinition, String> {
    let at = format!("containerDefinitions/{i}");
    let m = v
        .as_object()
        .ok_or_else(|| format!("{at} is not an object"))?;
    if let Some(k) = m.keys().find(|k| !CONTAINER_KEYS.contains(&k.as_str())) {
        return Err(format!("{at}/{k} is not supported by this provider"));
    }
    let mut b = ContainerDefinition::builder()
        .set_name(get_str(m, "name").map(str::to_string))
        .set_image(get_str(m, "image").map(str::to_string))
        .set_essential(m.get("essential").and_then(Value::as_bool))
        .set_memory_reservation(get_i32(m, "memoryReservation", &at)?)
        .set_privileged(m.get("privileged").and_then(Value::as_bool));
    for p in objects(m.get("portMappings"), &format!("{at}/portMappings"))? {
        b = b.port_mappings(
            PortMapping::builder()
                .set_container_port(get_i32(p, "containerPort", &at)?)
                .set_host_port(get_i32(p, "hostPort", &at)?)
                .set_protocol(get_str(p, "protocol").map(TransportProtocol::from))
                .build(),
        );
    }
    for e in objects(m.get("environment"), &format!("{at}/environment"))? {
        b = b.environment(
            KeyValuePair::builder()
                .set_name(get_str(e, "name").map(str::to_string))
                .set_value(e.get("value").and_then(Value::as_str).map(str::to_string))
                .build(),
        );
    }
    for (j, s) in objects(m.get("secrets"), &format!("{at}/secrets"))?
        .into_iter()
        .enumerate()
    {
        b = b.secrets(
            Secret::builder()
                .set_name(get_str(s, "name").map(str::to_string))
                .set_value_from(get_str(s, "valueFrom").map(str::to_string))
                .build()
                .map_err(|_| format!("{at}/secrets/{j} needs `name` and `valueFrom`"))?,
        );
    }
    for mp in objects(m.get("mountPoints"), &format!("{at}/mountPoints"))? {
        b = b.mount_points(
            MountPoint::builder()
                .set_source_volume(get_str(mp, "sourceVolume").map(str::to_string))
                .set_container_path(get_str(mp, "containerPath").map(str::to_string))
                .set_read_only(mp.get("readOnly").and_then(Value::as_bool))
                .build(),
        );
    }
    if let Some(lc) = m.get("logConfiguration").filter(|v| !v.is_null()) {
        let lc = lc
            .as_object()
            .ok_or_else(|| format!("{at}/logConfiguration is not an object"))?;
        let options = match lc.get("options") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(
                o.iter()
                    .map(|(k, v)| {
                        v.as_str()
                            .map(|v| (k.clone(), v.to_string()))
                            .ok_or_else(|| {
                                format!("{at}/logConfiguration/options/{k} is not a string")
                            })
                    })
                    .collect::<Result<HashMap<_, _>, _>>()?,
            ),
            Some(_) => return Err(format!("{at}/logConfiguration/options is not an object")),
        };
        b = b.log_configuration(
            LogConfiguration::builder()
                .set_log_driver(get_str(lc, "logDriver").map(LogDriver::from))
                .set_options(options)
                .build()
                .map_err(|_| format!("{at}/logConfiguration needs `logDriver`"))?,
        );
    }
    Ok(b.build())
}

/// A container definition in the desired shape: only the keys render sets, with ECS's defaults
/// filled in where ECS leaves a field out (essential: true, privileged/readOnly: false, empty
/// lists, protocol tcp).
pub(super) fn container_value(c: &ContainerDefinition) -> Value {
    let port_mappings: Vec<Value> = c
        .port_mappings()
        .iter()
        .map(|p| {
            json!({
                "containerPort": p.container_port(),
                "hostPort": p.host_port(),
                "protocol": p.protocol().map_or("tcp", TransportProtocol::as_str),
            })
        })
        .collect();
    let environment: Vec<Value> = c
        .environment()
        .iter()
        .map(|e| json!({ "name": e.name(), "value": e.value() }))
        .collect();
    let secrets: Vec<Value> = c
        .secrets()
        .iter()
        .map(|s| json!({ "name": s.name(), "valueFrom": s.value_from() }))
        .collect();
    let mount_points: Vec<Value> = c
        .mount_points()
        .iter()
        .map(|m| {
            json!({
                "sourceVolume": m.source_volume(),
                "containerPath": m.container_path(),
                "readOnly": m.read_only().unwrap_or(false),
            })
        })
        .collect();
    let log = c.log_configuration().map(|l| {
        let options: Map<String, Value> = l
            .options()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({ "logDriver": l.log_driver().as_str(), "options": options })
    });
    json!({
        "name": c.name(),
        "image": c.image(),
        "essential": c.essential().unwrap_or(true),
        "memoryReservation": c.memory_reservation(),
        "portMappings": port_mappings,
        "environment": environment,
        "secrets": secrets,
        "mountPoints": mount_points,
        "privileged": c.privileged().unwrap_or(false),
        "logConfiguration": log,
    })
}

/// Desired volumes as SDK values (host volumes: `{name, host: {sourcePath}}`).
pub(super) fn volumes(items: &[Value]) -> Result<Vec<Volume>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = v
                .as_object()
                .ok_or_else(|| format!("volumes/{i} is not an object"))?;
            let host = match v.get("host") {
                None | Some(Value::Null) => None,
                Some(Value::Object(h)) => Some(
                    HostVolumeProperties::builder()
                        .set_source_path(get_str(h, "sourcePath").map(str::to_string))
                        .build(),
                ),
                Some(_) => return Err("volumes/host is not an object".to_string()),
            };
            Ok(Volume::builder()
                .set_name(get_str(v, "name").map(str::to_string))
                .set_host(host)
                .build())
        })
        .collect()
}

/// A volume in the desired shape.
pub(super) fn volume_value(v: &Volume) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(v.name()));
    if let Some(h) = v.host() {
        m.insert("host".into(), json!({ "sourcePath": h.source_path() }));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_definitions_round_trip_to_the_desired_shape() {
        let desired = json!({
            "name": "mc",
            "image": "itzg/minecraft-server",
            "essential": true,
            "memoryReservation": 6144,
            "portMappings": [{ "containerPort": 25565, "hostPort": 25565, "protocol": "udp" }],
            "environment": [{ "name": "EULA", "value": "TRUE" }],
            "secrets": [{ "name": "RCON", "valueFrom": "/games/rcon" }],
            "mountPoints": [{ "sourceVolume": "Data-0", "containerPath": "/data", "readOnly": false }],
            "privileged": false,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": { "awslogs-group": "/g", "awslogs-region": "eu-west-1" }
            }
        });
        let c = container_definition(0, &desired).unwrap();
        assert_eq!(container_value(&c), desired);
    }

    #[test]
    fn missing_container_fields_read_as_ecs_defaults() {
        let c = ContainerDefinition::builder().name("x").image("i").build();
        let v = container_value(&c);
        assert_eq!(v["essential"], true);
        assert_eq!(v["privileged"], false);
        assert_eq!(v["secrets"], json!([]));
        assert_eq!(v["logConfiguration"], Value::Null);
    }

    #[test]
    fn unsupported_keys_are_refused_without_echoing_values() {
        let err = container_definition(1, &json!({ "name": "x", "command": ["secret-value"] }))
            .unwrap_err();
        assert!(err.contains("containerDefinitions/1/command"));
        assert!(!err.contains("secret-value"));
        let err = container_definition(0, &json!({ "secrets": [{ "name": "only" }] })).unwrap_err();
        assert!(err.contains("secrets/0"));
    }

    #[test]
    fn volumes_keep_host_paths() {
        let v = volumes(&[json!({ "name": "v", "host": { "sourcePath": "/mnt/v" } })]).unwrap();
        assert_eq!(
            volume_value(&v[0]),
            json!({ "name": "v", "host": { "sourcePath": "/mnt/v" } })
        );
        assert_eq!(
            volumes(&[json!("v")]).unwrap_err(),
            "volumes/0 is not an object"
        );
    }
}
