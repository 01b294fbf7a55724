//! Writes the CRDs generated from the spec crate's types into `charts/reconciler/crds/` (or
//! the directory given as the first argument). The `crds_are_current` test fails when the
//! checked-in files differ from what this writes.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(reconciler_operator::crd::CRD_DIR),
    };
    std::fs::create_dir_all(&dir)?;
    for (name, text) in reconciler_operator::crd::crd_files() {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
