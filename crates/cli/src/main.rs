//! `reconciler`: turns Base and ContainerSpec documents into on-demand container servers on
//! AWS. This binary is a thin layer: parsing arguments, printing, exit codes.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use reconciler_cli::redact;
use reconciler_ops::converge::{converge, ConvergeHooks, ConvergeOptions};
use reconciler_ops::deploy::{self, Prepared};
use reconciler_ops::destroy::{destroy, DestroyTarget};
use reconciler_ops::session::{load_specs, sdk_config, AwsOptions};
use reconciler_ops::{day2, watch};
use reconciler_spec::import::{import, ImportKind, ImportOptions};
use reconciler_spec::{check, collect_inputs, Diagnostic, InstanceCatalog, Maturity};

/// Exit code for success.
const EXIT_OK: u8 = 0;
/// Exit code for invalid input or any error.
const EXIT_ERROR: u8 = 1;
/// Exit code of `plan --detailed-exitcode` when there are changes.
const EXIT_CHANGES: u8 = 2;

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
    /// Send AWS calls to this endpoint instead of AWS (e.g. a local emulator); also read from
    /// AWS_ENDPOINT_URL.
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Provider calls in flight at once.
    #[arg(long, global = true, value_name = "N")]
    max_concurrency: Option<usize>,
    /// Print only errors and summaries.
    #[arg(short = 'q', long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log what the reconciler does on standard error (-v: each AWS operation, -vv: debug).
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour in human output: auto (when writing to a terminal and NO_COLOR is unset),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Print container environment values in plans and rendered resources (hidden by
    /// default; entries whose names say they are secret stay hidden).
    #[arg(long, global = true)]
    show_values: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum ColorChoice {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check spec files without calling AWS (exit 0 valid, 1 invalid).
    Validate(ValidateArgs),
    /// Print the JSON Schema of the documents (for editors and CI).
    Schema,
    /// Convert a config file of the original CDK project into a document.
    Import(ImportArgs),
    /// Print the AWS resources the specs describe, as YAML (no change is made).
    Render(RenderArgs),
    /// Show what apply would change (exit 0; with --detailed-exitcode: 0 none, 1 error, 2 changes).
    Plan(PlanArgs),
    /// Create or update everything the specs describe.
    Apply(ApplyArgs),
    /// Delete the servers the specs describe (or only NAME...), keeping their data.
    Destroy(DestroyArgs),
    /// Show whether each server is asleep, waking or running, its DNS record and alarms.
    Status(StatusArgs),
    /// Start a server now, as a DNS query would.
    Wake(ServerArgs),
    /// Stop a server now, as the idle alarm would.
    Sleep(ServerArgs),
    /// What each server costs: fixed per month and per running hour (offline price table).
    Cost(StatusArgs),
    /// Propose a watchdog threshold from the server's traffic history in CloudWatch (its idle
    /// peak plus a margin), with the data it is based on.
    Calibrate(CalibrateArgs),
    /// Reconcile continuously, with a per-server backoff on failure; stops on SIGTERM or
    /// Ctrl-C between cycles.
    Watch(WatchArgs),
    /// Run inside Kubernetes: reconcile ContainerSpec and Base objects (see docs/operator.md);
    /// stops on SIGTERM after the reconciles in progress.
    Operator(OperatorArgs),
}

#[derive(Args, Debug)]
struct OperatorArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Time between reconciles of an object that is in sync (drift is found this often).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    requeue: std::time::Duration,
    /// First retry delay of a failing object; it doubles on each failure.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    retry_min: std::time::Duration,
    /// The longest retry delay of a failing object.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    retry_max: std::time::Duration,
    /// When a ContainerSpec is deleted, also delete file systems whose spec does not keep
    /// them (as destroy --allow-data-loss).
    #[arg(long)]
    allow_data_loss: bool,
    /// Name of the coordination.k8s.io Lease replicas elect a leader with.
    #[arg(long, default_value = reconciler_operator::run::CONTROLLER)]
    lease_name: String,
    /// Namespace of the Lease (default: POD_NAMESPACE, else the watched namespace, else
    /// `default`).
    #[arg(long, value_name = "NS")]
    lease_namespace: Option<String>,
    /// Reconcile without electing a leader (a single replica only).
    #[arg(long)]
    no_leader_election: bool,
    /// Address of the /healthz and /readyz endpoint; `off` disables it.
    #[arg(long, default_value = "0.0.0.0:8080")]
    health_addr: String,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// An environment variable that `${VAR}` in objects may read (repeatable). No other may
    /// be read: the operator's environment holds its own settings and credentials, and
    /// whoever may create an object writes its references.
    #[arg(long = "env-allow", value_name = "NAME")]
    env_allow: Vec<String>,
    /// Take over AWS resources that carry no `reconciler.dev/owner` tag (made by `reconciler
    /// apply`): for a migration to the operator. Without it they are refused as another
    /// owner's.
    #[arg(long)]
    adopt_unowned: bool,
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Time between cycles: a number with `s`, `m` or `h`.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// The longest a failing server waits before it is tried again.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    max_backoff: std::time::Duration,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Stop after this many cycles (default: run until stopped).
    #[arg(long, value_name = "N")]
    cycles: Option<u64>,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `90s`, `5m`, `1h` (a bare number is seconds).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 5m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}`: the unit must be s, m or h")),
    };
    if seconds == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Only these servers (all when left out).
    names: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Text)]
    output: StatusFormat,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum StatusFormat {
    /// A table.
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Args, Debug)]
struct CalibrateArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// The server.
    name: String,
    /// Days of history to read, ending now (CloudWatch keeps one-minute data 15 days).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=15))]
    days: u32,
    /// Margin over the idle peak, in percent (`20` or `20%`).
    #[arg(long, default_value = "20", value_parser = parse_percent)]
    margin: f64,
    /// Output format: text, or one JSON object with every minute used.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// `20` or `20%`: a percentage of 0 or more.
fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a percentage such as 20 or 20%")),
    }
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// The server.
    name: String,
}

#[derive(Args, Debug)]
struct RenderArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Account id for ARNs; read from AWS (STS) when left out.
    #[arg(long)]
    account_id: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RenderFormat::Yaml)]
    output: RenderFormat,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum RenderFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

#[derive(Args, Debug)]
struct PlanArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Exit 2 when there are changes, 0 when there are none, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    prune: PruneArgs,
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Also delete the servers of the input's Bases whose specs are no longer in the input
    /// (found by their apply records in AWS). Their file systems are kept.
    #[arg(long)]
    prune: bool,
    /// With --prune: also delete file systems whose spec sets keepOnDelete: false.
    #[arg(long, requires = "prune")]
    allow_data_loss: bool,
}

#[derive(Args, Debug)]
struct ApplyArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    prune: PruneArgs,
    /// Do not ask for confirmation before pruning.
    #[arg(short = 'y', long)]
    yes: bool,
    /// How long to wait for another run that holds the Base's lock.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    lock_timeout: std::time::Duration,
    /// Output format: text, or one JSON object with the plan, the outcome of each resource
    /// and the summary.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(Args, Debug)]
struct DestroyArgs {
    /// Spec files or directories (recursing into *.yaml and *.yml); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Destroy only these servers; their Base and the other servers stay.
    names: Vec<String>,
    /// Also delete file systems whose spec sets keepOnDelete: false. Without it, every file
    /// system and backup vault is kept.
    #[arg(long)]
    allow_data_loss: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
    /// How long to wait for another run that holds the Base's lock.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    lock_timeout: std::time::Duration,
    /// Output format: text, or one JSON object with the plan, the outcome of each resource
    /// and the summary.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
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

/// How human output looks.
#[derive(Debug, Clone, Copy)]
struct Ui {
    quiet: bool,
    color: bool,
    /// Show container environment values (`--show-values`).
    show_values: bool,
}

impl Ui {
    fn new(cli: &Cli) -> Self {
        use std::io::IsTerminal;
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Ui {
            quiet: cli.quiet,
            color,
            show_values: cli.show_values,
        }
    }

    /// Plan text with its change lines coloured (when colour is on).
    fn plan_text(&self, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + 256);
        for line in text.split_inclusive('\n') {
            let code = if line.starts_with("-/+") || line.starts_with("+/-") {
                Some("35") // magenta: replacement
            } else if line.starts_with("+ ") || line.starts_with("  + ") {
                Some("32")
            } else if line.starts_with("~ ") {
                Some("33")
            } else if line.starts_with("- ") || line.starts_with("  - ") || line.starts_with("! ") {
                Some("31")
            } else if line.starts_with("= ") || line.starts_with("  = ") {
                Some("36")
            } else {
                None
            };
            match code {
                Some(code) => {
                    let body = line.trim_end_matches('\n');
                    out.push_str(&format!("\x1b[{code}m{body}\x1b[0m"));
                    if line.ends_with('\n') {
                        out.push('\n');
                    }
                }
                None => out.push_str(line),
            }
        }
        out
    }
}

/// Logs on standard error: warnings by default, more with -v; `RECONCILER_LOG` overrides.
fn init_logs(verbose: u8, format: LogFormat, default: &str) {
    let level = match verbose {
        0 => default,
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RECONCILER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> Result<u8> {
    let aws = AwsOptions {
        endpoint_url: cli.endpoint_url.clone(),
        max_concurrency: cli.max_concurrency,
    };
    let ui = Ui::new(&cli);
    match &cli.command {
        Command::Watch(args) => init_logs(cli.verbose, args.log_format, "info"),
        Command::Operator(args) => init_logs(cli.verbose, args.log_format, "info"),
        _ => init_logs(cli.verbose, LogFormat::Text, "warn"),
    }
    match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Schema => {
            print!("{}", reconciler_spec::schema::schema_json());
            Ok(EXIT_OK)
        }
        Command::Import(args) => import_cmd(&args),
        Command::Render(args) => runtime()?.block_on(render_cmd(&args, &aws, ui)),
        Command::Plan(args) => runtime()?.block_on(plan_cmd(&args, &aws, ui)),
        Command::Apply(args) => runtime()?.block_on(apply_cmd(&args, &aws, ui)),
        Command::Destroy(args) => runtime()?.block_on(destroy_cmd(&args, &aws, ui)),
        Command::Status(args) => runtime()?.block_on(status_cmd(&args, &aws)),
        Command::Wake(args) => runtime()?.block_on(wake_cmd(&args, &aws, true)),
        Command::Sleep(args) => runtime()?.block_on(wake_cmd(&args, &aws, false)),
        Command::Watch(args) => runtime()?.block_on(watch_cmd(&args, &aws)),
        Command::Operator(args) => runtime()?.block_on(operator_cmd(args, aws)),
        Command::Cost(args) => runtime()?.block_on(cost_cmd(&args, &aws)),
        Command::Calibrate(args) => runtime()?.block_on(calibrate_cmd(&args, &aws)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?)
}

/// Validates the specs (printing diagnostics), connects to AWS and renders. `None` when the
/// input is invalid: nothing has been sent to AWS then.
async fn prepare(files: &[PathBuf], aws: &AwsOptions) -> Result<Option<Prepared>> {
    let catalog = InstanceCatalog::offline();
    let (set, diags) = load_specs(files, &catalog)?;
    if diags.iter().any(Diagnostic::is_error) {
        report(&diags, Format::Text, None)?;
        return Ok(None);
    }
    for d in &diags {
        eprintln!("{d}\n");
    }
    let region = reconciler_ops::session::home_region(&set);
    let config = sdk_config(aws, &region).await;
    Ok(Some(deploy::prepare(set, catalog, config).await?))
}

async fn render_cmd(args: &RenderArgs, aws: &AwsOptions, ui: Ui) -> Result<u8> {
    let catalog = InstanceCatalog::offline();
    let (set, diags) = load_specs(&args.files, &catalog)?;
    if diags.iter().any(Diagnostic::is_error) {
        return report(&diags, Format::Text, None);
    }
    let (context, catalog) = match &args.account_id {
        Some(id) => (reconciler_render::Context::new(id.clone()), catalog),
        None => {
            let region = reconciler_ops::session::home_region(&set);
            let p = deploy::prepare(set.clone(), catalog, sdk_config(aws, &region).await).await?;
            (p.session.context.clone(), p.catalog)
        }
    };
    let mut resources = reconciler_render::render_resources(&context, &set, &catalog)?;
    reconciler_engine::model::DesiredGraph::new(resources.clone())?;
    redact::resources(&mut resources, ui.show_values);
    match args.output {
        RenderFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&resources)?),
        RenderFormat::Json => println!("{}", serde_json::to_string_pretty(&resources)?),
    }
    Ok(EXIT_OK)
}

fn plan_options(args: &PruneArgs) -> deploy::PlanOptions {
    deploy::PlanOptions {
        prune: args.prune,
        allow_data_loss: args.allow_data_loss,
    }
}

/// Prints a plan for people: the prune inventory, the changes, hints.
fn print_plan(planned: &deploy::Planned, ui: Ui) {
    for u in &planned.unreadable {
        eprintln!(
            "warning: apply record {} cannot be read; its server is left alone",
            u.parameter
        );
    }
    if planned.plan.is_empty() {
        println!(
            "No changes. AWS matches the specs ({} resources).",
            planned.graph_len
        );
    } else {
        let inventory = planned.prune_inventory();
        if !inventory.is_empty() {
            print!("{}", ui.plan_text(&inventory));
            println!();
        }
        let text = redact::plan(&planned.plan, ui.show_values).to_string();
        if ui.quiet {
            // The summary lines only.
            for line in text.lines().skip_while(|l| !l.starts_with("Plan: ")) {
                println!("{line}");
            }
        } else {
            print!("{}", ui.plan_text(&text));
        }
    }
    if let Some(hint) = planned.orphan_hint() {
        println!("{hint}");
    }
}

async fn plan_cmd(args: &PlanArgs, aws: &AwsOptions, ui: Ui) -> Result<u8> {
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    let rec = p.session.reconciler(aws);
    let planned = deploy::plan_with(&p, &rec, plan_options(&args.prune)).await?;
    match args.output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&redact::plan(&planned.plan, ui.show_values))?
        ),
        Format::Text => print_plan(&planned, ui),
    }
    Ok(if args.detailed_exitcode && !planned.plan.is_empty() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

async fn status_cmd(args: &StatusArgs, aws: &AwsOptions) -> Result<u8> {
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    let statuses = day2::status(&p, &args.names).await?;
    match args.output {
        StatusFormat::Text => print!("{}", day2::status_table(&statuses)),
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&statuses)?),
        StatusFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&statuses)?),
    }
    Ok(EXIT_OK)
}

async fn cost_cmd(args: &StatusArgs, aws: &AwsOptions) -> Result<u8> {
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    let report = reconciler_ops::cost::cost(&p, &args.names).await?;
    match args.output {
        StatusFormat::Text => print!("{}", reconciler_ops::cost::cost_table(&report)),
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        StatusFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&report)?),
    }
    Ok(EXIT_OK)
}

async fn calibrate_cmd(args: &CalibrateArgs, aws: &AwsOptions) -> Result<u8> {
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    let rec = p.session.reconciler(aws);
    let opts = reconciler_ops::calibrate::CalibrateOptions {
        days: args.days,
        margin_percent: args.margin,
    };
    let report = reconciler_ops::calibrate::calibrate(&p, &rec, &args.name, opts).await?;
    match args.output {
        Format::Text => print!("{}", reconciler_ops::calibrate::calibration_text(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    // No proposal (nothing ran in the window) is a failure for scripts.
    Ok(if report.proposed_threshold.is_some() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

async fn wake_cmd(args: &ServerArgs, aws: &AwsOptions, wake: bool) -> Result<u8> {
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    if wake {
        day2::wake(&p, &args.name).await?;
        println!(
            "{}: starting; `reconciler status {} -f ...` shows when it is running",
            args.name, args.name
        );
    } else {
        day2::sleep(&p, &args.name).await?;
        println!("{}: stopping", args.name);
    }
    Ok(EXIT_OK)
}

async fn watch_cmd(args: &WatchArgs, aws: &AwsOptions) -> Result<u8> {
    let shutdown = shutdown_signal()?;
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    reconciler_aws::lambda::check_artifacts(
        &reconciler_aws::lambda::ArtifactLocator::from_process(),
        p.graph.iter(),
    )
    .await?;
    let rec = p.session.reconciler(aws);
    let opts = watch::WatchOptions {
        interval: args.interval,
        max_backoff: args.max_backoff,
        cycles: args.cycles,
    };
    let reports = watch::run(&p, &rec, &opts, shutdown).await;
    let failed = reports
        .last()
        .is_some_and(|r| !r.failed.is_empty() || !r.base_failures.is_empty());
    Ok(if failed { EXIT_ERROR } else { EXIT_OK })
}

async fn operator_cmd(args: OperatorArgs, aws: AwsOptions) -> Result<u8> {
    let shutdown = shutdown_signal()?;
    let health_addr = match args.health_addr.as_str() {
        "off" => None,
        addr => Some(
            addr.parse()
                .with_context(|| format!("--health-addr `{addr}` is not HOST:PORT"))?,
        ),
    };
    let pod_namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty());
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("reconciler-{}", std::process::id()));
    let opts = reconciler_operator::Options {
        lease_namespace: args
            .lease_namespace
            .or(pod_namespace)
            .or_else(|| args.namespace.clone())
            .unwrap_or_else(|| "default".into()),
        namespace: args.namespace,
        config: reconciler_operator::Config {
            requeue: args.requeue,
            retry_min: args.retry_min,
            retry_max: args.retry_max,
            allow_data_loss: args.allow_data_loss,
        },
        leader_election: !args.no_leader_election,
        lease_name: args.lease_name,
        identity,
        timing: Default::default(),
        health_addr,
        concurrency: 2,
    };
    reconciler_operator::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster service account or KUBECONFIG)")?;
    let aws = reconciler_ops::operator::OperatorAws::new(aws)
        .allowing_env(args.env_allow)
        .adopting_unowned(args.adopt_unowned);
    reconciler_operator::run(client, aws, opts, shutdown).await?;
    Ok(EXIT_OK)
}

/// A future that resolves on SIGTERM or Ctrl-C. The SIGTERM handler is installed now, not
/// when the future is first polled, so a signal that arrives during the first cycle is not
/// lost (nor does it kill the process mid-apply).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}

fn eprint_line(line: &str) {
    eprintln!("{line}");
}

/// The JSON document `apply -o json` and `destroy -o json` print.
fn report_json(
    plan: &reconciler_engine::Plan,
    report: &reconciler_engine::ApplyReport,
    calls: &reconciler_aws::CallCounts,
) -> serde_json::Value {
    let resources: Vec<serde_json::Value> = report
        .resources()
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(&r.outcome).unwrap_or_default();
            if let serde_json::Value::Object(m) = &mut v {
                m.insert("id".into(), serde_json::json!(r.id));
                m.insert("action".into(), serde_json::json!(r.action));
            }
            v
        })
        .collect();
    serde_json::json!({
        "success": report.is_success(),
        "plan": plan.summary(),
        "outcome": report.counts(),
        "calls": { "reads": calls.reads, "mutations": calls.mutations },
        "resources": resources,
    })
}

/// What `apply` and `destroy` show along the shared paths: the plan, the question before
/// anything is deleted, and progress lines.
struct Shown {
    ui: Ui,
    text: bool,
    yes: bool,
    started: std::time::Instant,
    /// `destroy` shows the deletion plan and always asks; `apply` asks only before a prune.
    destroying: bool,
}

impl Shown {
    fn progress(&self) -> bool {
        self.text && !self.ui.quiet
    }
}

impl ConvergeHooks for Shown {
    fn planned(&self, planned: &deploy::Planned) -> Result<bool> {
        if self.destroying {
            return self.destroy_planned(&planned.plan);
        }
        if self.text {
            print_plan(planned, self.ui);
        }
        if planned.plan.is_empty() {
            return Ok(true);
        }
        if self.text {
            println!();
        }
        let prunes = !planned.pruned_owners.is_empty() && planned.plan.summary().destroy > 0;
        if prunes
            && !self.yes
            && !confirm("Delete the pruned servers' resources marked `-` above? Type yes: ")?
        {
            eprintln!("Nothing was changed.");
            return Ok(false);
        }
        Ok(true)
    }

    fn event(&self, event: reconciler_engine::execute::ApplyEvent) {
        if self.progress() {
            if let Some(line) = deploy::progress_line(&event, self.started) {
                eprint_line(&line);
            }
        }
    }
}

impl Shown {
    fn destroy_planned(&self, plan: &reconciler_engine::Plan) -> Result<bool> {
        if self.text {
            let text = redact::plan(plan, self.ui.show_values).to_string();
            print!("{}", self.ui.plan_text(&text));
        }
        if plan.summary().destroy > 0
            && !self.yes
            && !confirm("Delete the resources marked `-` above? Type yes: ")?
        {
            eprintln!("Nothing was deleted.");
            return Ok(false);
        }
        if self.text && plan.summary().destroy == 0 {
            println!("Nothing to delete.");
        }
        Ok(true)
    }
}

async fn apply_cmd(args: &ApplyArgs, aws: &AwsOptions, ui: Ui) -> Result<u8> {
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    let rec = p.session.reconciler(aws);
    let shown = Shown {
        ui,
        text: args.output == Format::Text,
        yes: args.yes,
        started: std::time::Instant::now(),
        destroying: false,
    };
    let opts = ConvergeOptions {
        plan: plan_options(&args.prune),
        lock_wait: args.lock_timeout,
    };
    let converged = converge(&p, &rec, &opts, &shown).await?;
    let plan = &converged.planned.plan;
    let report = match &converged.report {
        Some(report) => report,
        // Declined: nothing was changed.
        None if !plan.is_empty() => return Ok(EXIT_ERROR),
        None => &reconciler_engine::ApplyReport::default(),
    };
    finish(&shown, plan, report, &p, converged.record_error.as_ref())
}

/// Prints the closing summary (or the JSON report) of an apply or destroy; the exit code.
fn finish(
    shown: &Shown,
    plan: &reconciler_engine::Plan,
    report: &reconciler_engine::ApplyReport,
    p: &Prepared,
    after_error: Option<&anyhow::Error>,
) -> Result<u8> {
    let calls = p.session.counter.snapshot();
    if !shown.text {
        println!("{}", report_json(plan, report, &calls));
    } else if !plan.is_empty() || shown.destroying {
        deploy::summary(report, plan, &calls, &mut std::io::stdout())?;
    }
    if let Some(error) = after_error {
        eprintln!("error: {error:#}");
        return Ok(EXIT_ERROR);
    }
    Ok(if report.is_success() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

async fn destroy_cmd(args: &DestroyArgs, aws: &AwsOptions, ui: Ui) -> Result<u8> {
    let Some(p) = prepare(&args.files, aws).await? else {
        return Ok(EXIT_ERROR);
    };
    let rec = p.session.reconciler(aws);
    let (graph, ids) = deploy::destroy_graph(
        &p.session.context,
        &p.set,
        &p.catalog,
        &args.names,
        args.allow_data_loss,
    )?;
    let shown = Shown {
        ui,
        text: args.output == Format::Text,
        yes: args.yes,
        started: std::time::Instant::now(),
        destroying: true,
    };
    let target = DestroyTarget {
        graph: &graph,
        ids: &ids,
        servers: &args.names,
    };
    let destroyed = destroy(&p, &rec, &target, args.lock_timeout, &shown).await?;
    let Some(report) = &destroyed.report else {
        return Ok(EXIT_ERROR);
    };
    finish(
        &shown,
        &destroyed.plan,
        report,
        &p,
        destroyed.forget_error.as_ref(),
    )
}

fn confirm(question: &str) -> Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("refusing to delete without confirmation: pass --yes");
    }
    eprint!("{question}");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
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
