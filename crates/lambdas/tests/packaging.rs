//! The `reconciler-lambda` binary must run on the `provided.al2023` runtime:
//! an x86_64 or aarch64 ELF that is either static or needs at most glibc
//! 2.34 (Amazon Linux 2023's), and links only libraries that image has.
//!
//! The check reads the ELF itself (no `readelf`/`objdump` needed, so it runs
//! wherever the tests run). It checks the binary cargo built for these tests;
//! a release build links the same system libraries, so the symbol versions
//! it needs are the same.

use std::collections::BTreeSet;

/// Amazon Linux 2023's glibc.
const MAX_GLIBC: [u32; 2] = [2, 34];

/// Shared libraries the provided.al2023 image has (glibc's own and libgcc_s).
const SYSTEM_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;
const SHT_DYNAMIC: u32 = 6;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
const DT_NEEDED: u64 = 1;

/// What the packaging check needs to know about an ELF file.
#[derive(Debug)]
struct ElfFacts {
    machine: u16,
    /// Has a program interpreter, i.e. is dynamically linked.
    dynamic: bool,
    /// DT_NEEDED entries.
    needed: Vec<String>,
    /// Version names required from shared libraries (`.gnu.version_r`).
    required_versions: BTreeSet<String>,
}

/// A little-endian reader over the file that reports truncation as an error.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn slice(&self, at: u64, len: u64) -> Result<&[u8], String> {
        let start = usize::try_from(at).map_err(|_| "offset too large")?;
        let len = usize::try_from(len).map_err(|_| "length too large")?;
        self.0
            .get(start..start.checked_add(len).ok_or("overflow")?)
            .ok_or_else(|| format!("truncated ELF: {len} bytes at {start}"))
    }
    fn u16(&self, at: u64) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.slice(at, 2)?.try_into().unwrap()))
    }
    fn u32(&self, at: u64) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.slice(at, 4)?.try_into().unwrap()))
    }
    fn u64(&self, at: u64) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.slice(at, 8)?.try_into().unwrap()))
    }
    /// A NUL-terminated string starting at `at`.
    fn cstr(&self, at: u64) -> Result<String, String> {
        let start = usize::try_from(at).map_err(|_| "offset too large")?;
        let rest = self.0.get(start..).ok_or("string offset out of range")?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("unterminated string")?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

/// Reads a 64-bit little-endian ELF (both supported Lambda architectures are).
fn read_elf(data: &[u8]) -> Result<ElfFacts, String> {
    let b = Bytes(data);
    if b.slice(0, 4)? != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if b.slice(4, 2)? != [2, 1] {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let machine = b.u16(0x12)?;
    let (phoff, shoff) = (b.u64(0x20)?, b.u64(0x28)?);
    let (phentsize, phnum) = (u64::from(b.u16(0x36)?), u64::from(b.u16(0x38)?));
    let (shentsize, shnum) = (u64::from(b.u16(0x3a)?), u64::from(b.u16(0x3c)?));

    let mut dynamic = false;
    for i in 0..phnum {
        if b.u32(phoff + i * phentsize)? == PT_INTERP {
            dynamic = true;
        }
    }

    let mut sections = Vec::new();
    for i in 0..shnum {
        let at = shoff + i * shentsize;
        sections.push(Section {
            kind: b.u32(at + 4)?,
            offset: b.u64(at + 24)?,
            size: b.u64(at + 32)?,
            link: b.u32(at + 40)?,
            info: b.u32(at + 44)?,
        });
    }
    let strings_of = |s: &Section| -> Result<u64, String> {
        sections
            .get(s.link as usize)
            .map(|strtab| strtab.offset)
            .ok_or_else(|| "section links to a missing string table".to_owned())
    };

    let mut needed = Vec::new();
    let mut required_versions = BTreeSet::new();
    for section in &sections {
        match section.kind {
            SHT_DYNAMIC => {
                let strtab = strings_of(section)?;
                for i in 0..section.size / 16 {
                    let at = section.offset + i * 16;
                    if b.u64(at)? == DT_NEEDED {
                        needed.push(b.cstr(strtab + b.u64(at + 8)?)?);
                    }
                }
            }
            SHT_GNU_VERNEED => {
                // Verneed entries (one per library), each with a chain of
                // Vernaux entries naming the versions needed from it.
                let strtab = strings_of(section)?;
                let mut need = section.offset;
                for _ in 0..section.info {
                    let count = b.u16(need + 2)?;
                    let mut aux = need + u64::from(b.u32(need + 8)?);
                    for _ in 0..count {
                        required_versions.insert(b.cstr(strtab + u64::from(b.u32(aux + 8)?))?);
                        aux += u64::from(b.u32(aux + 12)?);
                    }
                    let next = b.u32(need + 12)?;
                    if next == 0 {
                        break;
                    }
                    need += u64::from(next);
                }
            }
            _ => {}
        }
    }
    Ok(ElfFacts {
        machine,
        dynamic,
        needed,
        required_versions,
    })
}

/// `GLIBC_2.34` → `[2, 34]`; `None` for `GLIBC_PRIVATE` and other libraries' versions.
fn glibc_version(name: &str) -> Option<Vec<u32>> {
    name.strip_prefix("GLIBC_")?
        .split('.')
        .map(|part| part.parse().ok())
        .collect()
}

#[test]
fn glibc_versions_parse_and_compare() {
    assert_eq!(glibc_version("GLIBC_2.2.5"), Some(vec![2, 2, 5]));
    assert_eq!(glibc_version("GLIBC_2.34"), Some(vec![2, 34]));
    assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
    assert_eq!(glibc_version("GCC_3.0"), None);
    assert!(glibc_version("GLIBC_2.9").unwrap() < glibc_version("GLIBC_2.34").unwrap());
    assert!(glibc_version("GLIBC_2.35").unwrap().as_slice() > MAX_GLIBC.as_slice());
}

/// Why an ELF would not run on provided.al2023, if it would not.
fn verdict(elf: &ElfFacts) -> Result<(), String> {
    if !matches!(elf.machine, EM_X86_64 | EM_AARCH64) {
        return Err(format!(
            "machine {} is neither x86_64 nor aarch64",
            elf.machine
        ));
    }
    if !elf.dynamic {
        return Ok(()); // static: needs nothing from the image
    }
    let foreign: Vec<&String> = elf
        .needed
        .iter()
        .filter(|lib| !SYSTEM_LIBRARIES.contains(&lib.as_str()))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "links libraries provided.al2023 may lack: {foreign:?}"
        ));
    }
    let newest = elf
        .required_versions
        .iter()
        .filter_map(|name| glibc_version(name).map(|v| (v, name)))
        .max()
        .ok_or_else(|| {
            format!("dynamic but requires no GLIBC_ version: the ELF reader is broken ({elf:?})")
        })?;
    if newest.0.as_slice() > MAX_GLIBC.as_slice() {
        return Err(format!(
            "requires {}, newer than provided.al2023's glibc 2.34",
            newest.1
        ));
    }
    Ok(())
}

#[test]
fn the_bootstrap_runs_on_provided_al2023() {
    let path = env!("CARGO_BIN_EXE_reconciler-lambda");
    let data = std::fs::read(path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    let elf = read_elf(&data).unwrap_or_else(|err| panic!("{path}: {err}"));
    if let Err(problem) = verdict(&elf) {
        panic!("{path}: {problem}");
    }
}

/// A minimal dynamic x86_64 ELF: an interpreter, `needed` libraries and one
/// `.gnu.version_r` entry for libc.so.6 requiring `versions`.
fn synthetic_elf(needed: &[&str], versions: &[&str]) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut add = |s: &str| {
        let at = strings.len() as u32;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        at
    };
    let libc = add("libc.so.6");
    let needed: Vec<u32> = needed.iter().map(|lib| add(lib)).collect();
    let versions: Vec<u32> = versions.iter().map(|v| add(v)).collect();

    let dynstr_off = 64 + 56;
    let verneed_off = dynstr_off + strings.len();
    let mut verneed = Vec::new();
    verneed.extend_from_slice(&1u16.to_le_bytes());
    verneed.extend_from_slice(&(versions.len() as u16).to_le_bytes());
    verneed.extend_from_slice(&libc.to_le_bytes());
    verneed.extend_from_slice(&16u32.to_le_bytes());
    verneed.extend_from_slice(&0u32.to_le_bytes());
    for (i, name) in versions.iter().enumerate() {
        verneed.extend_from_slice(&[0; 8]); // hash, flags, other
        verneed.extend_from_slice(&name.to_le_bytes());
        let next: u32 = if i + 1 < versions.len() { 16 } else { 0 };
        verneed.extend_from_slice(&next.to_le_bytes());
    }
    let dynamic_off = verneed_off + verneed.len();
    let mut dynamic = Vec::new();
    for name in &needed {
        dynamic.extend_from_slice(&DT_NEEDED.to_le_bytes());
        dynamic.extend_from_slice(&u64::from(*name).to_le_bytes());
    }
    dynamic.extend_from_slice(&[0; 16]); // DT_NULL
    let shoff = dynamic_off + dynamic.len();

    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01");
    elf.resize(16, 0);
    elf.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
    elf.extend_from_slice(&EM_X86_64.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&(shoff as u64).to_le_bytes());
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [64u16, 56, 1, 64, 4, 0] {
        // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&PT_INTERP.to_le_bytes());
    elf.resize(64 + 56, 0);
    elf.extend_from_slice(&strings);
    elf.extend_from_slice(&verneed);
    elf.extend_from_slice(&dynamic);
    let section =
        |elf: &mut Vec<u8>, kind: u32, offset: usize, size: usize, link: u32, info: u32| {
            let mut header = [0u8; 64];
            header[4..8].copy_from_slice(&kind.to_le_bytes());
            header[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
            header[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            header[40..44].copy_from_slice(&link.to_le_bytes());
            header[44..48].copy_from_slice(&info.to_le_bytes());
            elf.extend_from_slice(&header);
        };
    section(&mut elf, 0, 0, 0, 0, 0);
    section(&mut elf, 3, dynstr_off, strings.len(), 0, 0); // SHT_STRTAB
    section(&mut elf, SHT_GNU_VERNEED, verneed_off, verneed.len(), 1, 1);
    section(&mut elf, SHT_DYNAMIC, dynamic_off, dynamic.len(), 1, 0);
    elf
}

#[test]
fn the_check_rejects_what_al2023_cannot_run() {
    let ok = read_elf(&synthetic_elf(
        &["libc.so.6", "libgcc_s.so.1"],
        &["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_PRIVATE"],
    ))
    .unwrap();
    assert_eq!(ok.needed, ["libc.so.6", "libgcc_s.so.1"]);
    assert_eq!(verdict(&ok), Ok(()));

    let too_new = read_elf(&synthetic_elf(
        &["libc.so.6"],
        &["GLIBC_2.2.5", "GLIBC_2.35"],
    ))
    .unwrap();
    assert_eq!(
        verdict(&too_new),
        Err("requires GLIBC_2.35, newer than provided.al2023's glibc 2.34".to_owned())
    );

    let foreign = read_elf(&synthetic_elf(
        &["libc.so.6", "libssl.so.1.1"],
        &["GLIBC_2.17"],
    ))
    .unwrap();
    assert!(verdict(&foreign).unwrap_err().contains("libssl.so.1.1"));

    let mut arm32 = synthetic_elf(&["libc.so.6"], &["GLIBC_2.17"]);
    arm32[0x12..0x14].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
    assert!(verdict(&read_elf(&arm32).unwrap()).is_err());

    assert!(read_elf(b"#!/bin/sh\n").is_err());
    assert!(read_elf(&synthetic_elf(&[], &[])[..100]).is_err());
}
