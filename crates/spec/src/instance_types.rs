//! Memory and vCPUs of EC2 instance types: an offline table of common types, completed online
//! (EC2 `DescribeInstanceTypes`) by the caller when credentials are available.

use std::collections::{BTreeMap, BTreeSet};

/// Date the offline table was last checked against EC2.
pub const OFFLINE_TABLE_DATE: &str = "2026-11";

/// Memory the host keeps for itself; the container gets the rest as its reservation.
pub const HOST_RESERVED_MIB: u32 = 2048;

/// Least memory an instance type needs: the host's share plus 1 GiB for the container.
pub const MIN_INSTANCE_MEMORY_MIB: u32 = 3072;

/// What the reconciler needs to know about an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceTypeInfo {
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Default vCPUs.
    pub vcpus: u32,
    /// True for Graviton (arm64) types, which need the arm64 ECS AMI.
    pub arm64: bool,
}

/// Result of looking up an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Known, with its figures.
    Known(InstanceTypeInfo),
    /// EC2 said it does not exist.
    Rejected,
    /// Not in the offline table and not checked online.
    Unknown,
}

/// Instance types known to this run.
#[derive(Debug, Clone)]
pub struct InstanceCatalog {
    known: BTreeMap<String, InstanceTypeInfo>,
    rejected: BTreeSet<String>,
}

impl Default for InstanceCatalog {
    fn default() -> Self {
        Self::offline()
    }
}

impl InstanceCatalog {
    /// The offline table.
    pub fn offline() -> Self {
        let mut known = BTreeMap::new();
        // Burstable types have irregular shapes: list them whole.
        let t_sizes: [(&str, u32, u32); 7] = [
            ("nano", 2, 512),
            ("micro", 2, 1024),
            ("small", 2, 2048),
            ("medium", 2, 4096),
            ("large", 2, 8192),
            ("xlarge", 4, 16384),
            ("2xlarge", 8, 32768),
        ];
        for family in ["t3", "t3a", "t4g"] {
            for (size, vcpus, memory_mib) in t_sizes {
                known.insert(
                    format!("{family}.{size}"),
                    InstanceTypeInfo {
                        memory_mib,
                        vcpus,
                        arm64: family.ends_with('g'),
                    },
                );
            }
        }
        // General purpose (4 GiB per vCPU), compute (2) and memory (8) optimized families
        // share the same size ladder from `large` to `4xlarge`.
        let ladder: [(&str, u32); 4] =
            [("large", 2), ("xlarge", 4), ("2xlarge", 8), ("4xlarge", 16)];
        let families: [(&str, u32); 21] = [
            ("m5", 4),
            ("m5a", 4),
            ("m6i", 4),
            ("m6a", 4),
            ("m6g", 4),
            ("m7i", 4),
            ("m7a", 4),
            ("m7g", 4),
            ("c5", 2),
            ("c5a", 2),
            ("c6i", 2),
            ("c6a", 2),
            ("c6g", 2),
            ("c7i", 2),
            ("c7g", 2),
            ("r5", 8),
            ("r5a", 8),
            ("r6i", 8),
            ("r6g", 8),
            ("r7i", 8),
            ("r7g", 8),
        ];
        for (family, gib_per_vcpu) in families {
            let arm64 = family.ends_with('g');
            for (size, vcpus) in ladder {
                known.insert(
                    format!("{family}.{size}"),
                    InstanceTypeInfo {
                        memory_mib: vcpus * gib_per_vcpu * 1024,
                        vcpus,
                        arm64,
                    },
                );
            }
            if arm64 {
                known.insert(
                    format!("{family}.medium"),
                    InstanceTypeInfo {
                        memory_mib: gib_per_vcpu * 1024,
                        vcpus: 1,
                        arm64,
                    },
                );
            }
        }
        InstanceCatalog {
            known,
            rejected: BTreeSet::new(),
        }
    }

    /// Looks a type up.
    pub fn lookup(&self, name: &str) -> Lookup {
        if let Some(info) = self.known.get(name) {
            Lookup::Known(*info)
        } else if self.rejected.contains(name) {
            Lookup::Rejected
        } else {
            Lookup::Unknown
        }
    }

    /// Records what EC2 answered for a type: its figures, or that it does not exist.
    pub fn record_online(&mut self, name: &str, info: Option<InstanceTypeInfo>) {
        match info {
            Some(info) => {
                self.known.insert(name.to_string(), info);
            }
            None => {
                self.rejected.insert(name.to_string());
            }
        }
    }

    /// Names from `names` that the catalog cannot answer yet (candidates for an online lookup).
    pub fn unknown<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        names
            .into_iter()
            .filter(|n| matches!(self.lookup(n), Lookup::Unknown))
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_table_has_the_examples_types_with_right_memory() {
        let c = InstanceCatalog::offline();
        let get = |n| match c.lookup(n) {
            Lookup::Known(i) => i,
            other => panic!("{n}: {other:?}"),
        };
        assert_eq!(get("m5.large").memory_mib, 8192);
        assert_eq!(get("m5.2xlarge").memory_mib, 32768);
        assert_eq!(get("t3.micro").memory_mib, 1024);
        assert_eq!(get("t3.medium").memory_mib, 4096);
        assert_eq!(get("c6i.large").memory_mib, 4096);
        assert_eq!(get("r6g.medium").memory_mib, 8192);
        assert!(get("m7g.large").arm64);
        assert_eq!(c.lookup("x9.huge"), Lookup::Unknown);
    }

    #[test]
    fn online_answers_complete_the_table() {
        let mut c = InstanceCatalog::offline();
        c.record_online("x9.huge", None);
        c.record_online(
            "z1d.large",
            Some(InstanceTypeInfo {
                memory_mib: 16384,
                vcpus: 2,
                arm64: false,
            }),
        );
        assert_eq!(c.lookup("x9.huge"), Lookup::Rejected);
        assert!(matches!(c.lookup("z1d.large"), Lookup::Known(_)));
        let unknown = c.unknown(["m5.large", "x9.huge", "q1.big"]);
        assert_eq!(unknown.into_iter().collect::<Vec<_>>(), vec!["q1.big"]);
    }
}
