//! Account facts and instance-type figures read from AWS before render: the caller's account
//! (for ARNs) and the memory of instance types missing from the offline table, in one batched
//! `DescribeInstanceTypes` call.

use reconciler_render::Context;
use reconciler_spec::{InstanceCatalog, InstanceTypeInfo};

use crate::error::classify;
use crate::pool::ClientPool;

/// The caller's account and partition, from STS `GetCallerIdentity`.
pub async fn context(
    pool: &ClientPool,
    region: &str,
) -> Result<Context, reconciler_engine::provider::ProviderError> {
    let out = pool
        .sts(region)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("GetCallerIdentity", e))?;
    let account = out.account().unwrap_or_default().to_string();
    let partition = out
        .arn()
        .and_then(|arn| arn.split(':').nth(1))
        .unwrap_or("aws")
        .to_string();
    Ok(Context {
        account_id: account,
        partition,
    })
}

/// Looks up the given instance types in EC2 and records the answers (figures, or "does not
/// exist") in the catalog.
pub async fn complete_catalog(
    pool: &ClientPool,
    region: &str,
    names: &std::collections::BTreeSet<String>,
    catalog: &mut InstanceCatalog,
) -> Result<(), reconciler_engine::provider::ProviderError> {
    if names.is_empty() {
        return Ok(());
    }
    let ec2 = pool.ec2(region);
    // Unknown names make the whole call fail, so ask for all of them and fall back to one
    // call per name only when EC2 says some do not exist.
    let all = ec2
        .describe_instance_types()
        .set_instance_types(Some(names.iter().map(|n| n.as_str().into()).collect()))
        .send()
        .await;
    let found = match all {
        Ok(out) => out.instance_types().to_vec(),
        Err(_) => {
            let mut found = Vec::new();
            for name in names {
                match ec2
                    .describe_instance_types()
                    .instance_types(name.as_str().into())
                    .send()
                    .await
                {
                    Ok(out) => found.extend(out.instance_types().to_vec()),
                    Err(e)
                        if crate::error::code_of(&e).as_deref() == Some("InvalidInstanceType") => {}
                    Err(e) => return Err(classify("DescribeInstanceTypes", e)),
                }
            }
            found
        }
    };
    for name in names {
        let info = found
            .iter()
            .find(|t| t.instance_type().map(|t| t.as_str()) == Some(name.as_str()))
            .map(|t| InstanceTypeInfo {
                memory_mib: t.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0) as u32,
                vcpus: t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap_or(0) as u32,
                arm64: t
                    .processor_info()
                    .map(|p| {
                        p.supported_architectures()
                            .iter()
                            .any(|a| a.as_str() == "arm64")
                    })
                    .unwrap_or(false),
            });
        catalog.record_online(name, info);
    }
    Ok(())
}
