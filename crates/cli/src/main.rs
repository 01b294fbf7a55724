//! `reconciler`: turns Base and ContainerSpec documents into on-demand container servers on
//! AWS. This binary is a thin layer: parsing arguments, printing, exit codes.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use reconciler_spec::import::{import, ImportKind, ImportOptions};
use reconciler_spec::{check, collect_inputs, Diagnostic, InstanceCatalog, Maturity};

/// Exit code for success.
const EXIT_OK: u8 = 0;
/// Exit code for invalid input or any error.
const EXIT_ERROR: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "reconciler",
    version,
    about = "Declarative on-demand container servers on AWS: asleep (and free) until a player looks up their DNS name.",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check spec files without calling AWS (exit 0 valid, 1 invalid).
    Validate(ValidateArgs),
    /// Print the JSON Schema of the documents (for editors and CI).
    Schema,
    /// Convert a config file of the original CDK project into a document.
    Import(ImportArgs),
    /// Print the AWS resources the specs describe (not yet available).
    Render(SpecArgs),
    /// Show what apply would change (not yet available).
    Plan(SpecArgs),
    /// Create or update everything the specs describe (not yet available).
    Apply(SpecArgs),
    /// Delete the servers the specs describe, keeping their data (not yet available).
    Destroy(SpecArgs),
    /// Show whether each server is asleep, waking or running (not yet available).
    Status(SpecArgs),
    /// Start a server now (not yet available).
    Wake(SpecArgs),
    /// Stop a server now (not yet available).
    Sleep(SpecArgs),
    /// Reconcile continuously (not yet available).
    Watch(SpecArgs),
}

#[derive(Args, Debug)]
struct SpecArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Further arguments of the command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    /// Human-readable.
    Text,
    /// One JSON object, for tools.
    Json,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum KindArg {
    /// The original's base-stack config.
    Base,
    /// A per-container config.
    Container,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum MaturityArg {
    /// Production defaults.
    Prod,
    /// Development defaults.
    Devel,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// The original config file.
    file: PathBuf,
    /// `metadata.name` of the new document (the server's id or the Base's name).
    #[arg(long)]
    name: String,
    /// What the file is; detected from its keys by default.
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Maturity of an imported server (the original's `maturity=`).
    #[arg(long, value_enum, default_value_t = MaturityArg::Prod)]
    maturity: MaturityArg,
    /// The Base an imported server belongs to (`spec.baseRef`).
    #[arg(long = "base")]
    base_ref: Option<String>,
    /// Region of an imported Base; `${AWS_REGION}` when left out.
    #[arg(long)]
    region: Option<String>,
    /// Schema location written in the editor modeline.
    #[arg(long, default_value = "../schema/reconciler.schema.json")]
    schema: String,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Schema => {
            print!("{}", reconciler_spec::schema::schema_json());
            Ok(EXIT_OK)
        }
        Command::Import(args) => import_cmd(&args),
        Command::Render(_) => not_yet("render"),
        Command::Plan(_) => not_yet("plan"),
        Command::Apply(_) => not_yet("apply"),
        Command::Destroy(_) => not_yet("destroy"),
        Command::Status(_) => not_yet("status"),
        Command::Wake(_) => not_yet("wake"),
        Command::Sleep(_) => not_yet("sleep"),
        Command::Watch(_) => not_yet("watch"),
    }
}

fn not_yet(verb: &str) -> Result<u8> {
    eprintln!("error: `reconciler {verb}` is not available yet in this version; `reconciler validate` and `reconciler import` are");
    Ok(EXIT_ERROR)
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads and validates the given files; prints every diagnostic.
fn validate(args: &ValidateArgs) -> Result<u8> {
    let inputs = match collect_inputs(&args.files) {
        Ok(inputs) => inputs,
        Err(diags) => return report(&diags, args.output, None),
    };
    let catalog = InstanceCatalog::offline();
    let (set, diags) = check(&inputs, &env_lookup, &catalog);
    let summary = Summary {
        files: inputs.len(),
        bases: set.bases.len(),
        servers: set.servers.len(),
    };
    report(&diags, args.output, Some(summary))
}

#[derive(serde::Serialize)]
struct Summary {
    files: usize,
    bases: usize,
    servers: usize,
}

fn report(diags: &[Diagnostic], format: Format, summary: Option<Summary>) -> Result<u8> {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let code = if errors > 0 { EXIT_ERROR } else { EXIT_OK };
    match format {
        Format::Json => {
            let out = serde_json::json!({
                "valid": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "summary": summary,
                "diagnostics": diags,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            let mut stderr = std::io::stderr().lock();
            for d in diags {
                writeln!(stderr, "{d}\n")?;
            }
            if errors > 0 {
                writeln!(
                    stderr,
                    "{errors} error(s), {warnings} warning(s); nothing was sent to AWS"
                )?;
            } else if let Some(s) = summary {
                println!(
                    "valid: {} file(s), {} Base(s), {} ContainerSpec(s){}",
                    s.files,
                    s.bases,
                    s.servers,
                    if warnings > 0 {
                        format!(", {warnings} warning(s)")
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(code)
}

fn import_cmd(args: &ImportArgs) -> Result<u8> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let opts = ImportOptions {
        name: args.name.clone(),
        kind: args.kind.map(|k| match k {
            KindArg::Base => ImportKind::Base,
            KindArg::Container => ImportKind::ContainerSpec,
        }),
        maturity: match args.maturity {
            MaturityArg::Prod => Maturity::Prod,
            MaturityArg::Devel => Maturity::Devel,
        },
        base_ref: args.base_ref.clone(),
        region: args.region.clone(),
        schema: args.schema.clone(),
        source_name: args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    match import(&text, &opts) {
        Ok(doc) => {
            match &args.output {
                Some(path) => std::fs::write(path, doc)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{doc}"),
            }
            Ok(EXIT_OK)
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{}:{e}", args.file.display());
            }
            Ok(EXIT_ERROR)
        }
    }
}
