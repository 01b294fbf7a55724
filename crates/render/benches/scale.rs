//! Validate + render of 1, 100 and 1000 generated servers: wall time and peak heap. Run by
//! `cargo xtask bench` (optimised); prints one JSON object per size on standard output.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use reconciler_render::{render, Context};
use reconciler_spec::{check, Input, InstanceCatalog};

/// The system allocator, counting live and peak bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The Base of the examples and `n` servers made from the Minecraft example.
fn inputs(n: usize) -> Vec<Input> {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let base = std::fs::read(specs.join("base.yaml")).unwrap();
    let server = std::fs::read_to_string(specs.join("minecraft.yaml")).unwrap();
    let mut inputs = vec![Input {
        name: "base.yaml".into(),
        bytes: base,
    }];
    for i in 0..n {
        let name = format!("mc{i:04}");
        inputs.push(Input {
            name: format!("{name}.yaml"),
            bytes: server
                .replace("name: minecraft", &format!("name: {name}"))
                .into_bytes(),
        });
    }
    inputs
}

fn main() {
    let env = |name: &str| match name {
        "HOSTED_ZONE_ID" => Some("Z0000000000000000000".to_string()),
        _ => None,
    };
    // `SCALE_SIZES=100` measures one size (for a profiler).
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 100, 1000]);
    for n in sizes {
        let inputs = inputs(n);
        let catalog = InstanceCatalog::offline();
        // Best of three, each from the same inputs; the peak is that of one run.
        let mut best = f64::MAX;
        let mut best_check = f64::MAX;
        let mut peak = 0;
        let mut resources = 0;
        for _ in 0..3 {
            let before = LIVE.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
            let started = Instant::now();
            let (set, diags) = check(&inputs, &env, &catalog);
            assert!(diags.iter().all(|d| !d.is_error()), "{:?}", diags.first());
            best_check = best_check.min(started.elapsed().as_secs_f64());
            let graph = render(&Context::new("123456789012"), &set, &catalog).unwrap();
            let wall = started.elapsed().as_secs_f64();
            resources = graph.len();
            drop((graph, set));
            best = best.min(wall);
            peak = PEAK.load(Ordering::Relaxed) - before;
        }
        println!(
            "{}",
            serde_json::json!({
                "bench": "validate+render",
                "servers": n,
                "resources": resources,
                "wall_seconds": best,
                "validate_seconds": best_check,
                "peak_heap_bytes": peak,
            })
        );
    }
}
