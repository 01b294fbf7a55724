//! Packaging the runtime Lambda binary into the deployment zip Lambda expects.
//!
//! A `provided.al2023` function runs an executable named `bootstrap` at the root of its zip.
//! The reconciler builds that zip itself from the `reconciler-lambda` binary, and builds it
//! **deterministically** (one entry, fixed timestamp, fixed mode, fixed compression), so the
//! same binary always yields the same bytes and therefore the same `CodeSha256`
//! (base64 of the zip's SHA-256, which Lambda reports). Comparing that hash with the deployed
//! one is how a plan knows whether the code changed, without any state file.
//!
//! Where the binary comes from ([`ArtifactLocator`]), in order:
//! 1. the `RECONCILER_LAMBDA_ARTIFACT` environment variable: the binary, or a ready `.zip`
//!    (for instance one made by `cargo lambda build --output-format zip`);
//! 2. a file named like the artifact next to the running executable (`target/release/` holds
//!    both `reconciler` and `reconciler-lambda` after `cargo build --release`), or in that
//!    directory's parent (which covers test binaries in `target/<profile>/deps/`).
//!
//! The binary must be a 64-bit little-endian ELF executable for the function's architecture:
//! uploading an `arm64` binary to an `x86_64` function would only fail when the function is
//! first invoked, which in this system is when a player tries to wake a server.
//!
//! A debug build of the binary is tens of megabytes; packages are therefore cached per file
//! for the life of the process (and made again when the file changes), so a run zips it once.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use base64::Engine as _;
use reconciler_engine::provider::ProviderError;
use sha2::{Digest, Sha256};

/// The environment variable that points at the artifact (a binary or a ready `.zip`).
pub const ARTIFACT_ENV: &str = "RECONCILER_LAMBDA_ARTIFACT";

/// The name the runtime executes.
pub const BOOTSTRAP: &str = "bootstrap";

/// Lambda's limit on a zip uploaded directly with the API (`ZipFile`), 50 MB.
pub const MAX_ZIP_BYTES: u64 = 50 * 1024 * 1024;

/// Lambda's limit on the unzipped deployment package, 250 MB.
pub const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;

/// How to build the artifact, repeated in every "not found" error.
const BUILD_HINT: &str = "build it with `cargo build --release -p reconciler-lambdas` (the \
     binary lands next to the `reconciler` executable), or set RECONCILER_LAMBDA_ARTIFACT to the \
     binary or to a ready .zip";

/// The instruction sets Lambda runs, with their ELF machine numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `x86_64` (ELF machine `EM_X86_64`, 62).
    X86_64,
    /// `arm64` (ELF machine `EM_AARCH64`, 183).
    Arm64,
}

impl Architecture {
    /// Parses Lambda's spelling (`x86_64`, `arm64`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "x86_64" => Some(Architecture::X86_64),
            "arm64" => Some(Architecture::Arm64),
            _ => None,
        }
    }

    /// Lambda's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The ELF `e_machine` a binary for this architecture has.
    pub fn elf_machine(self) -> u16 {
        match self {
            Architecture::X86_64 => 62,
            Architecture::Arm64 => 183,
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployment package ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The file it was made from (a binary or a ready zip).
    pub source: PathBuf,
    /// The zip bytes.
    pub zip: Vec<u8>,
    /// Base64 of the zip's SHA-256: what Lambda reports as `CodeSha256`.
    pub code_sha256: String,
}

impl Package {
    fn new(source: PathBuf, zip: Vec<u8>) -> Self {
        let code_sha256 = code_sha256(&zip);
        Package {
            source,
            zip,
            code_sha256,
        }
    }
}

/// Base64 of the SHA-256 of `zip`, as Lambda computes `CodeSha256`.
pub fn code_sha256(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

/// Size limits, a parameter so tests can exercise them with small files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    zip: u64,
    unzipped: u64,
}

const AWS_LIMITS: Limits = Limits {
    zip: MAX_ZIP_BYTES,
    unzipped: MAX_UNZIPPED_BYTES,
};

/// Where artifact binaries are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLocator {
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The environment variable, then the running executable's directory and its parent; read
    /// when an artifact is looked up, not when the locator is made.
    Process,
    /// A fixed file for every artifact, then fixed directories.
    Explicit {
        file: Option<PathBuf>,
        dirs: Vec<PathBuf>,
    },
}

impl Default for ArtifactLocator {
    fn default() -> Self {
        Self::from_process()
    }
}

impl ArtifactLocator {
    /// The default: [`ARTIFACT_ENV`], then next to the running executable (and one level up).
    pub fn from_process() -> Self {
        ArtifactLocator {
            source: Source::Process,
        }
    }

    /// Looks only in `dir` for a file named like the artifact.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        ArtifactLocator {
            source: Source::Explicit {
                file: None,
                dirs: vec![dir.into()],
            },
        }
    }

    /// Uses `path` (a binary or a `.zip`) for every artifact.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        ArtifactLocator {
            source: Source::Explicit {
                file: Some(path.into()),
                dirs: Vec::new(),
            },
        }
    }

    /// The file that holds `artifact`, or a terminal error saying where it was looked for and
    /// how to build it.
    pub fn locate(&self, artifact: &str) -> Result<PathBuf, ProviderError> {
        let (file, dirs) = match &self.source {
            Source::Process => {
                let file = std::env::var_os(ARTIFACT_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from);
                let mut dirs = Vec::new();
                if let Ok(exe) = std::env::current_exe() {
                    if let Some(dir) = exe.parent() {
                        dirs.push(dir.to_path_buf());
                        if let Some(up) = dir.parent() {
                            dirs.push(up.to_path_buf());
                        }
                    }
                }
                (file, dirs)
            }
            Source::Explicit { file, dirs } => (file.clone(), dirs.clone()),
        };
        resolve(artifact, file.as_deref(), &dirs, |p| p.is_file())
    }

    /// Locates `artifact` and packages it for `arch`, from the process-wide cache when the
    /// file has not changed since it was last packaged. Blocking: reads, checks and compresses
    /// the file.
    pub fn package(
        &self,
        artifact: &str,
        arch: Architecture,
    ) -> Result<Arc<Package>, ProviderError> {
        let path = self.locate(artifact)?;
        package_cached(&path, arch)
    }

    /// [`ArtifactLocator::package`] on a blocking thread, for async callers.
    pub async fn package_async(
        &self,
        artifact: &str,
        arch: Architecture,
    ) -> Result<Arc<Package>, ProviderError> {
        let locator = self.clone();
        let artifact = artifact.to_string();
        tokio::task::spawn_blocking(move || locator.package(&artifact, arch))
            .await
            .map_err(|e| ProviderError::terminal(format!("packaging {ARTIFACT_ENV}: {e}")))?
    }
}

/// The lookup order, over an injected existence check: the explicit file when given (an
/// explicit setting never falls through silently), else the first directory holding a file
/// named `artifact`.
fn resolve(
    artifact: &str,
    file: Option<&Path>,
    dirs: &[PathBuf],
    exists: impl Fn(&Path) -> bool,
) -> Result<PathBuf, ProviderError> {
    if artifact.is_empty() || artifact.contains(['/', '\\']) || artifact == "." || artifact == ".."
    {
        return Err(ProviderError::terminal(format!(
            "Lambda artifact `{artifact}` is not a plain file name"
        )));
    }
    if let Some(file) = file {
        if exists(file) {
            return Ok(file.to_path_buf());
        }
        return Err(ProviderError::terminal(format!(
            "{ARTIFACT_ENV} points at `{}`, which is not a file; {BUILD_HINT}",
            file.display()
        )));
    }
    for dir in dirs {
        let candidate = dir.join(artifact);
        if exists(&candidate) {
            return Ok(candidate);
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| format!("`{}`", d.display())).collect();
    Err(ProviderError::terminal(format!(
        "the Lambda artifact `{artifact}` was not found (looked in {}); {BUILD_HINT}",
        if searched.is_empty() {
            "no directory".to_string()
        } else {
            searched.join(", ")
        }
    )))
}

/// What identifies a version of a file without reading it.
type Stamp = (u64, Option<SystemTime>);

/// Packages by (file, architecture), with the stamp of the file they were made from.
type Cache = HashMap<(PathBuf, Architecture), (Stamp, Arc<Package>)>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn package_cached(path: &Path, arch: Architecture) -> Result<Arc<Package>, ProviderError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    let stamp: Stamp = (meta.len(), meta.modified().ok());
    // Held while packaging: two regions observing the same artifact at once zip it once.
    let mut cache = cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (path.to_path_buf(), arch);
    if let Some((cached, package)) = cache.get(&key) {
        if *cached == stamp {
            return Ok(package.clone());
        }
    }
    let package = Arc::new(package_file(path, arch, AWS_LIMITS)?);
    cache.insert(key, (stamp, package.clone()));
    Ok(package)
}

fn io_error(path: &Path, e: &std::io::Error) -> ProviderError {
    ProviderError::terminal(format!(
        "reading the Lambda artifact `{}`: {e}",
        path.display()
    ))
}

/// Packages one file: a ready zip is checked and taken as it is, a binary is checked and
/// zipped.
fn package_file(path: &Path, arch: Architecture, limits: Limits) -> Result<Package, ProviderError> {
    let len = std::fs::metadata(path)
        .map_err(|e| io_error(path, &e))?
        .len();
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let limit = if is_zip { limits.zip } else { limits.unzipped };
    if len > limit {
        return Err(too_large(path, len, is_zip, limits));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, &e))?;
    if is_zip {
        let (head, unzipped) = inspect_zip(&bytes).map_err(|why| {
            ProviderError::terminal(format!(
                "`{}` is not a usable Lambda zip: {why}",
                path.display()
            ))
        })?;
        if unzipped > limits.unzipped {
            return Err(too_large(path, unzipped, false, limits));
        }
        check_elf(
            &head,
            arch,
            &format!("`{BOOTSTRAP}` in `{}`", path.display()),
        )?;
        return Ok(Package::new(path.to_path_buf(), bytes));
    }
    check_elf(&bytes, arch, &format!("`{}`", path.display()))?;
    let zip = zip_bootstrap(&bytes).map_err(|e| io_error(path, &e))?;
    if zip.len() as u64 > limits.zip {
        return Err(too_large(path, zip.len() as u64, true, limits));
    }
    Ok(Package::new(path.to_path_buf(), zip))
}

fn too_large(path: &Path, size: u64, zipped: bool, limits: Limits) -> ProviderError {
    let (what, limit) = if zipped {
        ("zipped", limits.zip)
    } else {
        ("unzipped", limits.unzipped)
    };
    ProviderError::terminal(format!(
        "the Lambda package from `{}` is {} {what}, over Lambda's limit of {} for a direct \
         upload; a debug build is many times larger than a release build: build it with \
         `cargo build --release -p reconciler-lambdas`",
        path.display(),
        mib(size),
        mib(limit)
    ))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn machine_name(machine: u16) -> String {
    match machine {
        62 => "x86_64 (ELF machine 62)".to_string(),
        183 => "arm64 (ELF machine 183)".to_string(),
        3 => "32-bit x86 (ELF machine 3)".to_string(),
        40 => "32-bit ARM (ELF machine 40)".to_string(),
        other => format!("ELF machine {other}"),
    }
}

/// Checks that `bytes` start like a 64-bit little-endian ELF executable for `arch`. `what`
/// names the file in messages.
fn check_elf(bytes: &[u8], arch: Architecture, what: &str) -> Result<(), ProviderError> {
    let fail = |why: String| {
        ProviderError::terminal(format!(
            "{what} cannot run on Lambda's {arch} runtime: {why}"
        ))
    };
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(fail(format!(
            "it is not an ELF executable (the provided.al2023 runtime runs a Linux binary); \
             {BUILD_HINT}"
        )));
    }
    if bytes[4] != 2 {
        return Err(fail(
            "it is a 32-bit ELF; Lambda runs 64-bit binaries".into(),
        ));
    }
    if bytes[5] != 1 {
        return Err(fail("it is a big-endian ELF".into()));
    }
    let kind = u16::from_le_bytes([bytes[16], bytes[17]]);
    // ET_EXEC, or ET_DYN for position-independent executables (the default on Linux).
    if kind != 2 && kind != 3 {
        return Err(fail(format!("it is not an executable (ELF type {kind})")));
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != arch.elf_machine() {
        return Err(fail(format!(
            "it is built for {}, but the function's architecture is {}; build the artifact \
             for {arch} or change the function's architecture",
            machine_name(machine),
            machine_name(arch.elf_machine())
        )));
    }
    Ok(())
}

/// DOS date of 1980-01-01, the earliest a zip can hold: the fixed timestamp of the entry.
const DOS_DATE_1980_01_01: u16 = (1 << 5) | 1;
/// `-rwxr-xr-x` as a regular file, in the high half of the external attributes.
const UNIX_MODE_0755: u32 = 0o100_755;
/// "Made by" Unix (3) with zip spec 2.0, so readers honour the Unix mode.
const VERSION_MADE_BY_UNIX: u16 = (3 << 8) | 20;
const VERSION_NEEDED: u16 = 20;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATE: u16 = 8;
const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;

/// Zips `binary` as the single entry `bootstrap`, mode 0755, dated 1980-01-01, deflated.
///
/// The fastest deflate level: packaging runs on every plan (observe compares hashes), and on
/// a 59 MB debug binary the default level took three times as long for a zip only a fifth
/// smaller (15 MB against 18.5 MB), far below Lambda's upload limit either way.
///
/// Nothing in the output depends on the time, the machine or the file's path, so the same
/// binary gives the same zip. (Deflate output is fixed for a given compressor version; a new
/// release of the compressor may change it, which shows once as a code update.) Sizes fit the
/// classic 32-bit zip fields because the input is at most [`MAX_UNZIPPED_BYTES`].
pub fn zip_bootstrap(binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut crc = flate2::Crc::new();
    crc.update(binary);
    let crc = crc.sum();
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(binary.len() / 2),
        flate2::Compression::fast(),
    );
    encoder.write_all(binary)?;
    let compressed = encoder.finish()?;
    let name = BOOTSTRAP.as_bytes();
    let (csize, usize_) = (compressed.len() as u32, binary.len() as u32);

    let mut out = Vec::with_capacity(compressed.len() + 128);
    let put16 = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
    let put32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());

    put32(&mut out, LOCAL_HEADER);
    put16(&mut out, VERSION_NEEDED);
    put16(&mut out, 0); // flags: sizes and CRC are in this header
    put16(&mut out, METHOD_DEFLATE);
    put16(&mut out, 0); // time 00:00:00
    put16(&mut out, DOS_DATE_1980_01_01);
    put32(&mut out, crc);
    put32(&mut out, csize);
    put32(&mut out, usize_);
    put16(&mut out, name.len() as u16);
    put16(&mut out, 0); // no extra field (no extended timestamps)
    out.extend_from_slice(name);
    out.extend_from_slice(&compressed);

    let central_offset = out.len() as u32;
    put32(&mut out, CENTRAL_HEADER);
    put16(&mut out, VERSION_MADE_BY_UNIX);
    put16(&mut out, VERSION_NEEDED);
    put16(&mut out, 0);
    put16(&mut out, METHOD_DEFLATE);
    put16(&mut out, 0);
    put16(&mut out, DOS_DATE_1980_01_01);
    put32(&mut out, crc);
    put32(&mut out, csize);
    put32(&mut out, usize_);
    put16(&mut out, name.len() as u16);
    put16(&mut out, 0); // extra
    put16(&mut out, 0); // comment
    put16(&mut out, 0); // disk
    put16(&mut out, 0); // internal attributes
    put32(&mut out, UNIX_MODE_0755 << 16);
    put32(&mut out, 0); // local header offset
    out.extend_from_slice(name);
    let central_size = out.len() as u32 - central_offset;

    put32(&mut out, END_OF_CENTRAL_DIRECTORY);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, 1);
    put16(&mut out, 1);
    put32(&mut out, central_size);
    put32(&mut out, central_offset);
    put16(&mut out, 0);
    Ok(out)
}

/// Reads a ready zip's directory: returns the first bytes of its `bootstrap` entry (enough
/// for the ELF check) and the total unzipped size of all entries.
fn inspect_zip(zip: &[u8]) -> Result<(Vec<u8>, u64), String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        zip.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated".to_string())
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        zip.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "truncated".to_string())
    };
    // The end record is the last 22 bytes, or earlier when a comment (at most 64 KiB) follows.
    let lowest = zip.len().saturating_sub(22 + 0xffff);
    let end = (lowest..=zip.len().saturating_sub(22))
        .rev()
        .find(|&at| u32_at(at).ok() == Some(END_OF_CENTRAL_DIRECTORY))
        .ok_or("no zip directory found (is it a zip?)")?;
    let entries = u16_at(end + 10)?;
    let mut at = u32_at(end + 16)? as usize;
    let mut unzipped = 0u64;
    let mut bootstrap = None;
    for _ in 0..entries {
        if u32_at(at)? != CENTRAL_HEADER {
            return Err("damaged zip directory".into());
        }
        let method = u16_at(at + 10)?;
        let csize = u32_at(at + 20)? as usize;
        unzipped += u64::from(u32_at(at + 24)?);
        let name_len = u16_at(at + 28)? as usize;
        let extra_len = u16_at(at + 30)? as usize;
        let comment_len = u16_at(at + 32)? as usize;
        let local = u32_at(at + 42)? as usize;
        let name = zip.get(at + 46..at + 46 + name_len).ok_or("truncated")?;
        if name == BOOTSTRAP.as_bytes() {
            bootstrap = Some((method, local, csize));
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    let (method, local, csize) =
        bootstrap.ok_or("it has no `bootstrap` entry at its root, which the runtime executes")?;
    if u32_at(local)? != LOCAL_HEADER {
        return Err("damaged entry header".into());
    }
    let data = local + 30 + u16_at(local + 26)? as usize + u16_at(local + 28)? as usize;
    let stored = zip
        .get(data..data.saturating_add(csize))
        .ok_or("truncated entry")?;
    let mut head = Vec::with_capacity(64);
    match method {
        METHOD_STORED => head.extend_from_slice(&stored[..stored.len().min(64)]),
        METHOD_DEFLATE => {
            flate2::read::DeflateDecoder::new(stored)
                .take(64)
                .read_to_end(&mut head)
                .map_err(|e| format!("cannot inflate `bootstrap`: {e}"))?;
        }
        other => return Err(format!("`bootstrap` uses compression method {other}")),
    }
    Ok((head, unzipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header: 64-bit, little-endian, executable, for `machine`, padded.
    fn fake_elf(machine: u16, padding: usize) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b.extend(std::iter::repeat_n(0x90, padding));
        b
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("reconciler-package-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn zips_are_deterministic_and_hash_like_lambda() {
        let binary = fake_elf(62, 10_000);
        let a = zip_bootstrap(&binary).unwrap();
        let b = zip_bootstrap(&binary.clone()).unwrap();
        assert_eq!(a, b);
        assert_eq!(code_sha256(&a), code_sha256(&b));
        // base64 of a 32-byte digest.
        assert_eq!(code_sha256(&a).len(), 44);
        let other = zip_bootstrap(&fake_elf(62, 10_001)).unwrap();
        assert_ne!(code_sha256(&a), code_sha256(&other));
        // Compressible padding really is deflated.
        assert!(a.len() < 1_000, "{} bytes", a.len());
    }

    #[test]
    fn our_zip_reads_back_as_bootstrap_0755() {
        let binary = fake_elf(183, 300);
        let zip = zip_bootstrap(&binary).unwrap();
        let (head, unzipped) = inspect_zip(&zip).unwrap();
        assert_eq!(head, binary[..64]);
        assert_eq!(unzipped, binary.len() as u64);
        // The central header carries the Unix mode and the 1980-01-01 date.
        let central = zip
            .windows(4)
            .position(|w| w == CENTRAL_HEADER.to_le_bytes())
            .unwrap();
        let attrs = u32::from_le_bytes(zip[central + 38..central + 42].try_into().unwrap());
        assert_eq!(attrs >> 16, 0o100_755);
        assert_eq!(
            u16::from_le_bytes(zip[central + 14..central + 16].try_into().unwrap()),
            DOS_DATE_1980_01_01
        );
        check_elf(&head, Architecture::Arm64, "bootstrap").unwrap();
    }

    #[test]
    fn elf_check_names_both_machines() {
        check_elf(&fake_elf(62, 0), Architecture::X86_64, "`b`").unwrap();
        let err = check_elf(&fake_elf(183, 0), Architecture::X86_64, "`b`").unwrap_err();
        assert_eq!(err.class, reconciler_engine::provider::ErrorClass::Terminal);
        assert!(err.message.contains("arm64 (ELF machine 183)"), "{err}");
        assert!(err.message.contains("x86_64 (ELF machine 62)"), "{err}");
        let err = check_elf(b"#!/bin/sh\necho hi\n", Architecture::X86_64, "`b`").unwrap_err();
        assert!(err.message.contains("not an ELF executable"), "{err}");
        let mut thirty_two = fake_elf(62, 0);
        thirty_two[4] = 1;
        assert!(check_elf(&thirty_two, Architecture::X86_64, "`b`")
            .unwrap_err()
            .message
            .contains("32-bit"));
        let mut object = fake_elf(62, 0);
        object[16] = 1; // ET_REL
        assert!(check_elf(&object, Architecture::X86_64, "`b`")
            .unwrap_err()
            .message
            .contains("not an executable"));
    }

    #[test]
    fn size_limits_are_terminal_and_suggest_a_release_build() {
        let dir = temp_dir("limits");
        let path = dir.join("big");
        // Random-looking bytes barely compress.
        let mut binary = fake_elf(62, 0);
        let mut x: u32 = 12345;
        binary.extend((0..4096).map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        }));
        std::fs::write(&path, &binary).unwrap();
        let small_unzipped = Limits {
            zip: 1 << 20,
            unzipped: 1000,
        };
        let err = package_file(&path, Architecture::X86_64, small_unzipped).unwrap_err();
        assert!(err.message.contains("unzipped"), "{err}");
        assert!(err.message.contains("--release"), "{err}");
        let small_zip = Limits {
            zip: 1000,
            unzipped: 1 << 20,
        };
        let err = package_file(&path, Architecture::X86_64, small_zip).unwrap_err();
        assert!(err.message.contains(" zipped"), "{err}");
        let ok = package_file(&path, Architecture::X86_64, AWS_LIMITS).unwrap();
        assert_eq!(
            ok.code_sha256,
            code_sha256(&zip_bootstrap(&binary).unwrap())
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_ready_zip_is_taken_as_it_is_after_its_checks() {
        let dir = temp_dir("zip");
        let zip_path = dir.join("bootstrap.zip");
        let zip = zip_bootstrap(&fake_elf(183, 100)).unwrap();
        std::fs::write(&zip_path, &zip).unwrap();
        let package = package_file(&zip_path, Architecture::Arm64, AWS_LIMITS).unwrap();
        assert_eq!(package.zip, zip);
        let err = package_file(&zip_path, Architecture::X86_64, AWS_LIMITS).unwrap_err();
        assert!(err.message.contains("ELF machine 183"), "{err}");
        std::fs::write(&zip_path, b"not a zip at all, but long enough to look at").unwrap();
        let err = package_file(&zip_path, Architecture::X86_64, AWS_LIMITS).unwrap_err();
        assert!(err.message.contains("not a usable Lambda zip"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn lookup_order_env_then_exe_dir_then_parent() {
        let exe_dir = PathBuf::from("/x/target/debug/deps");
        let dirs = vec![exe_dir.clone(), PathBuf::from("/x/target/debug")];
        // Next to the executable wins over its parent.
        let both = |p: &Path| p.starts_with("/x/target/debug");
        assert_eq!(
            resolve("reconciler-lambda", None, &dirs, both).unwrap(),
            exe_dir.join("reconciler-lambda")
        );
        // Then the parent.
        let parent_only = |p: &Path| p == Path::new("/x/target/debug/reconciler-lambda");
        assert_eq!(
            resolve("reconciler-lambda", None, &dirs, parent_only).unwrap(),
            PathBuf::from("/x/target/debug/reconciler-lambda")
        );
        // The explicit file comes first, and never falls through when it is missing.
        let env = Path::new("/opt/bootstrap.zip");
        assert_eq!(
            resolve("reconciler-lambda", Some(env), &dirs, |_| true).unwrap(),
            env
        );
        let err = resolve("reconciler-lambda", Some(env), &dirs, both).unwrap_err();
        assert!(err.message.contains(ARTIFACT_ENV), "{err}");
        // Nothing found: the error says where it looked and how to build it.
        let err = resolve("reconciler-lambda", None, &dirs, |_| false).unwrap_err();
        assert!(err.message.contains("/x/target/debug/deps"), "{err}");
        assert!(
            err.message
                .contains("cargo build --release -p reconciler-lambdas"),
            "{err}"
        );
        assert!(resolve("../evil", None, &dirs, |_| true).is_err());
    }

    #[test]
    fn the_cache_follows_file_changes() {
        let dir = temp_dir("cache");
        let locator = ArtifactLocator::dir(&dir);
        std::fs::write(dir.join("art"), fake_elf(62, 10)).unwrap();
        let first = locator.package("art", Architecture::X86_64).unwrap();
        let again = locator.package("art", Architecture::X86_64).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "packaged once");
        std::fs::write(dir.join("art"), fake_elf(62, 20)).unwrap();
        let changed = locator.package("art", Architecture::X86_64).unwrap();
        assert_ne!(first.code_sha256, changed.code_sha256);
        std::fs::remove_dir_all(&dir).ok();
    }
}
