//! The command line: `serve`, `check-config`, `demo`, and operator
//! commands working on the configured store directly. Every operator
//! command takes `--config` and `--json`; operator commands log only
//! warnings unless `-v`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::clock::now_unix;
use crate::config::{self, Config};
use crate::credentials::ceilings::CeilingPatch;
use crate::credentials::signing::TokenClaims;
use crate::credentials::{api_keys, clients, named, principals, scopes, signing, CredentialError, Op, Revoked};
use crate::grants::{Grant, GrantClaim};
use crate::store::{Principal, Store, StoreError};

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--service-account or --user is required")]
    NoOwner,
    #[error("the password cannot be read from standard input: {0}")]
    PasswordUnreadable(std::io::Error),
    #[error("the password needs at least {} characters", principals::MIN_PASSWORD_CHARS)]
    PasswordTooShort,
    /// `--ttl` does not parse.
    #[error("{0}")]
    BadTtl(String),
    #[error("--ttl must be between 1s and tokens.max_ttl ({max}s)")]
    TtlOutOfRange { max: u64 },
    #[error("--bounds \"{0}\" must be four numbers: west,south,east,north")]
    BadBounds(String),
    /// The signing key could not be made sure of or loaded.
    #[error("{0}")]
    SigningKey(String),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CliError {
    /// Exit code 64 for a refused command (bad input, nothing found, a
    /// conflict), 1 for a failure.
    fn is_refusal(&self) -> bool {
        match self {
            CliError::NoOwner
            | CliError::PasswordUnreadable(_)
            | CliError::PasswordTooShort
            | CliError::BadTtl(_)
            | CliError::BadBounds(_)
            | CliError::TtlOutOfRange { .. } => true,
            CliError::SigningKey(_) => false,
            CliError::Credential(c) => c.is_refusal(),
            CliError::Store(s) => matches!(
                s,
                StoreError::Invalid(_) | StoreError::NotFound(_) | StoreError::Conflict(_)
            ),
        }
    }

    /// How the error is printed: as the store's errors always were, with
    /// their kind (`invalid: …`, `not found: …`).
    fn message(&self) -> String {
        match self {
            CliError::Store(s) | CliError::Credential(CredentialError::Store(s)) => s.to_string(),
            CliError::Credential(c @ CredentialError::NotFound(_)) => format!("not found: {c}"),
            CliError::Credential(c @ CredentialError::Conflict(_)) => format!("conflict: {c}"),
            e if e.is_refusal() => format!("invalid: {e}"),
            e => format!("internal store error: {e}"),
        }
    }
}

// The command line. Every command and flag has a one-line help with its
// default (`tilegate help COMMAND`).
//
// `--config` sits on the commands that read the config (`serve` and the
// operator commands; `check-config` takes the file as its argument, `demo`
// its own `--demo-config`), `--json` on the operator commands, `-v` on
// all. For scripts written before, `--config FILE` and `--json` are also
// accepted before the command (hidden); a command they mean nothing to
// refuses them. (Plain comments: a doc comment would replace `about`.)
#[derive(Parser)]
#[command(
    name = "tilegate",
    version,
    about = "Authorization gateway for map-tile and streaming-data backends"
)]
pub struct Cli {
    /// Log more on stderr: -v, -vv, -vvv [default: warnings; serve, demo: info]; RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The config file, before the command (the older form of `COMMAND --config`).
    #[arg(long, value_name = "FILE", hide = true)]
    pub config: Option<PathBuf>,
    /// JSON output, before the command (the older form of `COMMAND --json`).
    #[arg(long, hide = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The config file when neither `--config` nor `TILEGATE_CONFIG` names one.
pub const DEFAULT_CONFIG: &str = "config/tilegate.toml";

/// The config file of a command that reads it: `--config`, else the one
/// given before the command, else `TILEGATE_CONFIG`, else
/// [`DEFAULT_CONFIG`].
fn config_path(own: Option<PathBuf>, before: Option<PathBuf>) -> PathBuf {
    own.or(before)
        .or_else(|| {
            std::env::var_os("TILEGATE_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

/// `serve`'s options.
#[derive(Args)]
pub struct ServeArgs {
    /// Config file [env: TILEGATE_CONFIG] [default: config/tilegate.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Options of every operator command (they open the configured store).
#[derive(Args)]
pub struct StoreOpts {
    /// Config file naming the store [env: TILEGATE_CONFIG] [default: config/tilegate.toml].
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text lines.
    #[arg(long, global = true)]
    pub json: bool,
}

// A group of operator commands (`org`, `user`, …): the store options, then
// one of its commands. (No doc comment: the group's help is its variant's.)
#[derive(Args)]
pub struct Group<C: Subcommand> {
    #[command(flatten)]
    pub opts: StoreOpts,
    #[command(subcommand)]
    pub cmd: C,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the gateway: proxy listener, token endpoints and admin API, as configured.
    Serve(ServeArgs),
    /// Validate a config file; print every problem; exit 64 if any.
    CheckConfig {
        /// The config file to check [env: TILEGATE_CONFIG] [default: config/tilegate.toml].
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Run a demo: gateway on the sample config, a sample tile upstream,
    /// the MapLibre and Leaflet pages, and a working API key printed.
    Demo(crate::demo::DemoArgs),
    /// Serve generated vector tiles at /tiles/{z}/{x}/{y}.pbf (a stand-in
    /// tile server for trials, benchmarks and the soak).
    SampleUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
    },
    /// Organizations: create, list, set the scope ceiling, delete.
    Org(Group<OrgCmd>),
    /// Users: create, list, set the scope ceiling, disable, enable, reset
    /// the password, delete.
    User(Group<UserCmd>),
    /// Service accounts (an app backend's identity): create, list, delete.
    #[command(name = "service-account")]
    ServiceAccount(Group<SaCmd>),
    /// OAuth clients of any user: list, delete.
    Client(Group<ClientCmd>),
    /// API keys (an app backend's long-lived secret): create, list, revoke.
    #[command(name = "api-key")]
    ApiKey(Group<KeyCmd>),
    /// A user's access-generator token (mints named tokens): show, regenerate.
    #[command(name = "generator-token")]
    GeneratorToken(Group<GenCmd>),
    /// Named tokens minted with generator tokens: list, revoke.
    #[command(name = "named-token")]
    NamedToken(Group<NamedCmd>),
    /// Test tokens signed with the gateway's key: mint.
    Token(Group<TokenCmd>),
    /// Signing keys: generate, rotate, list.
    Keys(Group<KeysCmd>),
    /// The audit log of credential changes, newest first.
    Audit(AuditArgs),
}

/// `audit`'s options.
#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub opts: StoreOpts,
    /// How many entries to print.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

/// An operator command, out of its group.
enum OperatorCmd {
    Org(OrgCmd),
    User(UserCmd),
    ServiceAccount(SaCmd),
    Client(ClientCmd),
    ApiKey(KeyCmd),
    GeneratorToken(GenCmd),
    NamedToken(NamedCmd),
    Token(TokenCmd),
    Keys(KeysCmd),
    Audit { limit: i64 },
}

/// A command, sorted: an operator command with its store options, or one
/// of the others (`serve`, `check-config`, `demo`, `sample-upstream`).
enum Sorted {
    Operator(StoreOpts, OperatorCmd),
    Other(Cmd),
}

impl Cmd {
    fn sort(self) -> Sorted {
        let (opts, cmd) = match self {
            Cmd::Org(g) => (g.opts, OperatorCmd::Org(g.cmd)),
            Cmd::User(g) => (g.opts, OperatorCmd::User(g.cmd)),
            Cmd::ServiceAccount(g) => (g.opts, OperatorCmd::ServiceAccount(g.cmd)),
            Cmd::Client(g) => (g.opts, OperatorCmd::Client(g.cmd)),
            Cmd::ApiKey(g) => (g.opts, OperatorCmd::ApiKey(g.cmd)),
            Cmd::GeneratorToken(g) => (g.opts, OperatorCmd::GeneratorToken(g.cmd)),
            Cmd::NamedToken(g) => (g.opts, OperatorCmd::NamedToken(g.cmd)),
            Cmd::Token(g) => (g.opts, OperatorCmd::Token(g.cmd)),
            Cmd::Keys(g) => (g.opts, OperatorCmd::Keys(g.cmd)),
            Cmd::Audit(a) => (a.opts, OperatorCmd::Audit { limit: a.limit }),
            other => return Sorted::Other(other),
        };
        Sorted::Operator(opts, cmd)
    }

    /// Whether the command runs servers (and logs as a server does).
    fn serves(&self) -> bool {
        matches!(self, Cmd::Serve(_) | Cmd::Demo(_) | Cmd::SampleUpstream { .. })
    }

    /// The command's name, for messages.
    fn name(&self) -> &'static str {
        match self {
            Cmd::Serve(_) => "serve",
            Cmd::CheckConfig { .. } => "check-config",
            Cmd::Demo(_) => "demo",
            Cmd::SampleUpstream { .. } => "sample-upstream",
            _ => "this command",
        }
    }
}

#[derive(Subcommand)]
pub enum OrgCmd {
    /// Create an organization.
    Create {
        /// The organization's name (unique).
        name: String,
        /// Space-separated declared scopes every credential of the org stays
        /// within ("" for none) [default: every declared scope but clients:manage].
        #[arg(long)]
        scope_ceiling: Option<String>,
    },
    /// List organizations with their effective scope ceilings.
    List,
    /// Set an organization's scope ceiling; named tokens beyond it are revoked.
    SetCeiling {
        /// Organization id or name.
        org: String,
        #[command(flatten)]
        ceiling: CeilingArg,
    },
    /// Delete an organization, revoking and deleting its users, service
    /// accounts and every credential under it.
    Delete {
        /// Organization id or name.
        org: String,
    },
}

/// A new ceiling, or back to the default.
#[derive(Args)]
#[group(required = true, multiple = false, id = "ceiling")]
pub struct CeilingArg {
    /// Space-separated declared scopes ("" for none).
    #[arg(long)]
    scope: Option<String>,
    /// Back to the default (org: every declared scope but clients:manage; user: the org's).
    #[arg(long)]
    default: bool,
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user (and their access-generator token).
    Create {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// The login name (unique).
        #[arg(long)]
        username: String,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
        /// Space-separated declared scopes within the org's ceiling ("" for
        /// none) [default: the org's ceiling].
        #[arg(long)]
        scope_ceiling: Option<String>,
    },
    /// List users (of one organization) with their state and effective ceiling.
    List {
        /// Organization id or name.
        #[arg(long)]
        org: Option<String>,
    },
    /// Set a user's scope ceiling (within the org's); named tokens beyond it are revoked.
    SetCeiling {
        /// User uid or username.
        user: String,
        #[command(flatten)]
        ceiling: CeilingArg,
    },
    /// Disable a user: no login; login tokens, generator token, named
    /// tokens, clients and API keys stop working on every replica.
    Disable {
        /// User uid or username.
        user: String,
    },
    /// Let a disabled user log in again (revoked credentials stay revoked).
    Enable {
        /// User uid or username.
        user: String,
    },
    /// Set a new password read from standard input; the old one and the
    /// user's login tokens stop working.
    ResetPassword {
        /// User uid or username.
        user: String,
        /// Read the new password from standard input (first line; required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Delete a user, revoking and deleting everything the user holds.
    Delete {
        /// User uid or username.
        user: String,
    },
}

#[derive(Subcommand)]
pub enum SaCmd {
    /// Create a service account.
    Create {
        /// Organization id or name.
        #[arg(long)]
        org: String,
        /// Its name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        grant: GrantFlags,
    },
    /// Change the grant ceiling (tiles, allowed origins) of a service
    /// account's API keys: the tile flags replace the tile limit, the
    /// origin flags the origins; what no flag names stays as it is.
    SetGrant {
        /// Service account id.
        id: String,
        #[command(flatten)]
        grant: GrantFlags,
        #[command(flatten)]
        clear: ClearFlags,
    },
    /// List service accounts (of one organization).
    List {
        /// Organization id or name.
        #[arg(long)]
        org: Option<String>,
    },
    /// Delete a service account, revoking its API keys on every replica.
    Delete {
        /// Service account id.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum ClientCmd {
    /// List OAuth clients (never their secrets).
    List {
        /// Only this user's (uid or username).
        #[arg(long)]
        user: Option<String>,
        /// Only this organization's (id or name).
        #[arg(long)]
        org: Option<String>,
    },
    /// Delete an OAuth client; its tokens stop working on every replica.
    Delete {
        /// Client id (tgc_…).
        client_id: String,
    },
    /// Change the grant ceiling (tiles, allowed origins) of an OAuth
    /// client's tokens: the tile flags replace the tile limit, the origin
    /// flags the origins; what no flag names stays as it is.
    SetGrant {
        /// Client id (tgc_…).
        client_id: String,
        #[command(flatten)]
        grant: GrantFlags,
        #[command(flatten)]
        clear: ClearFlags,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Create an API key (its scopes within the owner's scope ceiling); shown once.
    Create(KeyCreate),
    /// List API keys (never the secrets).
    List {
        /// Only this organization's (id).
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke an API key; its tokens stop working on every replica.
    Revoke {
        /// API key id (key_…).
        id: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "owner")]
pub struct Owner {
    /// For this service account (id).
    #[arg(long)]
    service_account: Option<String>,
    /// For this user (uid).
    #[arg(long)]
    user: Option<String>,
}

#[derive(Args)]
pub struct KeyCreate {
    #[command(flatten)]
    owner: Owner,
    /// Space-separated scopes, each declared in [scopes].
    #[arg(long)]
    scope: String,
    /// Lifetime, e.g. 90d [default: no expiry].
    #[arg(long)]
    expires_in: Option<String>,
    #[command(flatten)]
    grant: GrantFlags,
}

/// A grant ceiling: a tile grant and allowed origins (docs/grants.md).
#[derive(Args, Debug, Default)]
pub struct GrantFlags {
    #[command(flatten)]
    tiles: TileFlags,
    /// A web origin the tokens may be used from on routes with
    /// bind_origin (https://app.example.com or https://*.example.com);
    /// repeat for more; none: any (a service account's key: its service
    /// account's; set-grant: unchanged).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
}

/// Limits `set-grant` removes.
#[derive(Args, Debug, Default)]
pub struct ClearFlags {
    /// Remove the tile limit (any tile).
    #[arg(long, conflicts_with_all = ["minzoom", "maxzoom", "bounds", "layers"])]
    clear_tiles: bool,
    /// Remove the origin limit (any origin).
    #[arg(long, conflicts_with = "allowed_origins")]
    clear_origins: bool,
}

impl GrantFlags {
    /// The change `set-grant` asks for: a dimension with flags set, one
    /// cleared removed, the others unchanged.
    fn patch(&self, clear: &ClearFlags) -> Result<CeilingPatch, CliError> {
        let tiles = match self.tiles.claim()? {
            Some(t) => Some(Some(t)),
            None => clear.clear_tiles.then_some(None),
        };
        let origins = if self.allowed_origins.is_empty() {
            clear.clear_origins.then_some(None)
        } else {
            Some(Some(self.allowed_origins.clone()))
        };
        Ok(CeilingPatch { tiles, origins })
    }
}

/// A tile-grant ceiling (docs/grants.md); no flag: any tile.
#[derive(Args, Debug, Default)]
pub struct TileFlags {
    /// Lowest zoom the tokens may read (0-30).
    #[arg(long)]
    minzoom: Option<u8>,
    /// Highest zoom the tokens may read (0-30).
    #[arg(long)]
    maxzoom: Option<u8>,
    /// An area as west,south,east,north in degrees (west > east crosses
    /// the antimeridian); repeat for more boxes.
    #[arg(long = "bounds", value_name = "W,S,E,N", allow_hyphen_values = true)]
    bounds: Vec<String>,
    /// A layer the tokens may read; repeat for more.
    #[arg(long = "layer")]
    layers: Vec<String>,
}

impl TileFlags {
    /// The grant the flags name, `None` when none is given.
    fn claim(&self) -> Result<Option<GrantClaim>, CliError> {
        if self.minzoom.is_none() && self.maxzoom.is_none() && self.bounds.is_empty() && self.layers.is_empty() {
            return Ok(None);
        }
        let mut boxes = Vec::new();
        for b in &self.bounds {
            let v: Vec<f64> = b
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| CliError::BadBounds(b.clone()))?;
            let bx: [f64; 4] = v.try_into().map_err(|_| CliError::BadBounds(b.clone()))?;
            boxes.push(bx);
        }
        Ok(Some(GrantClaim {
            minzoom: self.minzoom,
            maxzoom: self.maxzoom,
            bounds: (!boxes.is_empty()).then_some(boxes),
            layers: (!self.layers.is_empty()).then(|| self.layers.clone()),
        }))
    }
}

#[derive(Subcommand)]
pub enum GenCmd {
    /// Print a user's access-generator token.
    Show {
        /// User uid.
        #[arg(long)]
        user: String,
    },
    /// Replace it; the old one and every named token it minted stop working.
    Regenerate {
        /// User uid.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
pub enum NamedCmd {
    /// List named tokens.
    List {
        /// Only this user's (uid).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a named token on every replica.
    Revoke {
        /// Named token id (its jti).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Sign a test token with the gateway's active key.
    Mint {
        /// Space-separated scopes, each declared in [scopes].
        #[arg(long)]
        scope: String,
        /// Lifetime (30s, 10m, 1h, 2d), at most tokens.max_ttl.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Organization id for the token's org_id claim [default: none].
        #[arg(long)]
        org: Option<String>,
        /// The token's subject (sub claim).
        #[arg(long, default_value = "operator")]
        sub: String,
        /// A tile grant for the token (docs/grants.md).
        #[command(flatten)]
        tiles: TileFlags,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Make sure an active signing key exists (generated when absent).
    Generate,
    /// Make a new active key; older keys keep verifying for the grace.
    Rotate,
    /// List keys (public parts only).
    List,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log from `info` up; operator commands only warnings, unless
    // asked with -v (RUST_LOG overrides either).
    let levels = ["warn", "info", "debug", "trace"];
    let level = levels[(usize::from(cli.verbose) + usize::from(cli.cmd.serves())).min(levels.len() - 1)];
    crate::telemetry::init(
        !matches!(cli.cmd, Cmd::Demo(_)) && std::env::var_os("TILEGATE_LOG_TEXT").is_none(),
        level,
    );
    // One worker (`TOKIO_WORKER_THREADS=1`, the per-core benchmark setting):
    // tokio's current-thread scheduler does the same work without the
    // work-stealing machinery.
    let one_worker = std::env::var("TOKIO_WORKER_THREADS").is_ok_and(|v| v.trim() == "1");
    let mut builder = if one_worker {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(cli))
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        for p in e.problems() {
            eprintln!("{p}");
        }
        ExitCode::from(64)
    })
}

async fn open(cfg: &Config) -> Result<Store, ExitCode> {
    let kek = crate::state::load_kek(cfg).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })?;
    // A command may wait longer than a request would.
    let wait = cfg.store.acquire_timeout.max(std::time::Duration::from_secs(5));
    Store::open_with(&cfg.store.url, 2, wait, kek).await.map_err(|e| {
        eprintln!("store: {e}");
        ExitCode::FAILURE
    })
}

fn out<T: serde::Serialize>(json: bool, v: &T, text: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

fn fail(e: CliError) -> ExitCode {
    eprintln!("error: {}", e.message());
    if e.is_refusal() {
        ExitCode::from(64)
    } else {
        ExitCode::FAILURE
    }
}

async fn run(cli: Cli) -> ExitCode {
    let (opts, cmd) = match cli.cmd.sort() {
        Sorted::Operator(opts, cmd) => (opts, cmd),
        Sorted::Other(cmd) => {
            // `--config`/`--json` before a command they mean nothing to.
            let ignored = match &cmd {
                Cmd::Demo(_) | Cmd::SampleUpstream { .. } if cli.config.is_some() => Some("--config"),
                _ if cli.json => Some("--json"),
                _ => None,
            };
            if let Some(flag) = ignored {
                let hint = if matches!(cmd, Cmd::Demo(_)) && flag == "--config" {
                    " (the demo reads --demo-config)"
                } else {
                    ""
                };
                eprintln!("error: {flag} means nothing to {}{hint}", cmd.name());
                return ExitCode::from(64);
            }
            return run_other(cmd, cli.config).await;
        }
    };
    let json = opts.json || cli.json;
    let cfg = match load(&config_path(opts.config, cli.config)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open(&cfg).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    match operator(cmd, &cfg, &store, json).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `serve`, `check-config`, `demo` and `sample-upstream`; `before`: a
/// `--config` given before the command.
async fn run_other(cmd: Cmd, before: Option<PathBuf>) -> ExitCode {
    match cmd {
        Cmd::Serve(args) => match crate::app::run(config_path(args.config, before)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(match e {
                    crate::state::StartError::Config(_) => 64,
                    _ => 1,
                })
            }
        },
        Cmd::CheckConfig { file } => {
            let path = config_path(file, before);
            match config::load(&path) {
                Ok(c) => {
                    let errors = crate::state::Runtime::build(std::sync::Arc::new(c))
                        .err()
                        .unwrap_or_default();
                    if errors.is_empty() {
                        println!("{}: ok", path.display());
                        ExitCode::SUCCESS
                    } else {
                        errors.iter().for_each(|e| eprintln!("{e}"));
                        ExitCode::from(64)
                    }
                }
                Err(e) => {
                    e.problems().iter().for_each(|p| eprintln!("{p}"));
                    ExitCode::from(64)
                }
            }
        }
        Cmd::Demo(args) => crate::demo::run(args).await,
        Cmd::SampleUpstream { listen } => match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => {
                eprintln!("sample upstream on http://{listen}");
                crate::demo::serve_tiles(l).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{listen}: {e}");
                ExitCode::FAILURE
            }
        },
        _ => unreachable!("operator commands are run by `run`"),
    }
}

/// The first line of standard input, for a password.
fn password_from_stdin() -> Result<String, CliError> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(CliError::PasswordUnreadable)?;
    let p = s.lines().next().unwrap_or("").to_owned();
    if p.chars().count() < principals::MIN_PASSWORD_CHARS {
        return Err(CliError::PasswordTooShort);
    }
    Ok(p)
}

fn ceiling_arg(c: &CeilingArg) -> Option<&str> {
    if c.default {
        None
    } else {
        c.scope.as_deref()
    }
}

fn revoked_text(what: &str, r: &Revoked) -> String {
    let mut lines = vec![what.to_owned()];
    lines.extend(r.credentials.iter().map(|c| format!("revoked\t{c}")));
    lines.extend(r.named_tokens.iter().map(|t| format!("revoked named token\t{t}")));
    if r.named_tokens_marked > 0 {
        lines.push(format!(
            "{} named tokens revoked with their generator token",
            r.named_tokens_marked
        ));
    }
    lines.join("\n")
}

fn view_text(v: &serde_json::Value, id: &str, name: &str) -> String {
    let disabled = if v["disabled_at"].is_null() { "" } else { "\tdisabled" };
    format!(
        "{}\t{}\tceiling: {}{disabled}",
        v[id].as_str().unwrap_or(""),
        v[name].as_str().unwrap_or(""),
        v["effective_scope_ceiling"].as_str().unwrap_or("")
    )
}

async fn operator(cmd: OperatorCmd, cfg: &Config, store: &Store, json: bool) -> Result<(), CliError> {
    let op = Op::cli(store, cfg, "cli");
    match cmd {
        OperatorCmd::Org(OrgCmd::Create { name, scope_ceiling }) => {
            let o = principals::create_org(&op, &name, scope_ceiling.as_deref()).await?;
            let v = principals::org_view(cfg, &o);
            out(json, &v, || format!("created org {} ({})", o.id, o.name));
        }
        OperatorCmd::Org(OrgCmd::List) => {
            let l = principals::orgs_view(store, cfg).await?;
            out(json, &l, || {
                l.iter()
                    .map(|o| view_text(o, "id", "name"))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCmd::Org(OrgCmd::SetCeiling { org, ceiling }) => {
            let (o, revoked) = principals::set_org_ceiling(&op, &org, ceiling_arg(&ceiling)).await?;
            let mut v = principals::org_view(cfg, &o);
            v["revoked"] = serde_json::to_value(&revoked).unwrap_or_default();
            out(json, &v, || {
                revoked_text(
                    &format!("org {}: ceiling {}", o.id, v["effective_scope_ceiling"]),
                    &revoked,
                )
            });
        }
        OperatorCmd::Org(OrgCmd::Delete { org }) => {
            let (o, revoked) = principals::delete_org(&op, &org).await?;
            let v = serde_json::json!({ "deleted": o.id, "revoked": revoked });
            out(json, &v, || {
                revoked_text(&format!("deleted org {} ({})", o.id, o.name), &revoked)
            });
        }
        OperatorCmd::User(UserCmd::Create {
            org,
            username,
            password_stdin,
            scope_ceiling,
        }) => {
            let password = if password_stdin {
                Some(password_from_stdin()?)
            } else {
                None
            };
            let u =
                principals::create_user(&op, &org, &username, password.as_deref(), scope_ceiling.as_deref()).await?;
            let v = principals::user_view(cfg, &u, store.find_org(&u.org_id).await?.as_ref());
            out(json, &v, || format!("created user {} ({})", u.uid, u.username));
        }
        OperatorCmd::User(UserCmd::List { org }) => {
            let l = principals::users_view(store, cfg, org.as_deref()).await?;
            out(json, &l, || {
                l.iter()
                    .map(|u| view_text(u, "uid", "username"))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCmd::User(UserCmd::SetCeiling { user, ceiling }) => {
            let (u, revoked) = principals::set_user_ceiling(&op, &user, ceiling_arg(&ceiling)).await?;
            let mut v = principals::user_view(cfg, &u, store.find_org(&u.org_id).await?.as_ref());
            v["revoked"] = serde_json::to_value(&revoked).unwrap_or_default();
            out(json, &v, || {
                revoked_text(
                    &format!("user {}: ceiling {}", u.uid, v["effective_scope_ceiling"]),
                    &revoked,
                )
            });
        }
        OperatorCmd::User(UserCmd::Disable { user }) => {
            let (u, revoked) = principals::disable_user(&op, &user).await?;
            let v = serde_json::json!({
                "user": principals::user_view(cfg, &u, store.find_org(&u.org_id).await?.as_ref()),
                "revoked": revoked,
            });
            out(json, &v, || {
                revoked_text(&format!("disabled user {} ({})", u.uid, u.username), &revoked)
            });
        }
        OperatorCmd::User(UserCmd::Enable { user }) => {
            let u = principals::enable_user(&op, &user).await?;
            let v = principals::user_view(cfg, &u, store.find_org(&u.org_id).await?.as_ref());
            out(json, &v, || format!("enabled user {} ({})", u.uid, u.username));
        }
        OperatorCmd::User(UserCmd::ResetPassword { user, .. }) => {
            let password = password_from_stdin()?;
            let (u, revoked) = principals::reset_password(&op, &user, &password).await?;
            let v = serde_json::json!({
                "user": principals::user_view(cfg, &u, store.find_org(&u.org_id).await?.as_ref()),
                "revoked": revoked,
            });
            out(json, &v, || {
                revoked_text(&format!("new password for user {} ({})", u.uid, u.username), &revoked)
            });
        }
        OperatorCmd::User(UserCmd::Delete { user }) => {
            let (u, revoked) = principals::delete_user(&op, &user).await?;
            let v = serde_json::json!({ "deleted": u.uid, "revoked": revoked });
            out(json, &v, || {
                revoked_text(&format!("deleted user {} ({})", u.uid, u.username), &revoked)
            });
        }
        OperatorCmd::ServiceAccount(SaCmd::Create { org, name, grant }) => {
            let tiles = grant.tiles.claim()?;
            let sa =
                principals::create_service_account(&op, &org, &name, tiles.as_ref(), &grant.allowed_origins).await?;
            out(json, &sa, || format!("created service account {} ({})", sa.id, sa.name));
        }
        OperatorCmd::ServiceAccount(SaCmd::SetGrant { id, grant, clear }) => {
            let sa = principals::set_service_account_grant(&op, &id, &grant.patch(&clear)?).await?;
            out(json, &sa, || {
                format!("set the grant ceiling of service account {}", sa.id)
            });
        }
        OperatorCmd::ServiceAccount(SaCmd::List { org }) => {
            let l = principals::list_service_accounts(store, org.as_deref()).await?;
            out(json, &l, || {
                l.iter()
                    .map(|s| format!("{}\t{}\t{}", s.id, s.org_id, s.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCmd::ServiceAccount(SaCmd::Delete { id }) => {
            let revoked = principals::delete_service_account(&op, &id).await?;
            let v = serde_json::json!({ "deleted": id, "revoked": revoked });
            out(json, &v, || {
                revoked_text(&format!("deleted service account {id}"), &revoked)
            });
        }
        OperatorCmd::Client(ClientCmd::List { user, org }) => {
            let l = clients::list_clients(store, user.as_deref(), org.as_deref()).await?;
            out(json, &l, || {
                l.iter()
                    .map(|c| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}",
                            c.client_id,
                            c.owner_uid,
                            c.name.as_deref().unwrap_or("-"),
                            c.scopes.join(" "),
                            if c.revoked_at.is_some() { "revoked" } else { "active" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCmd::Client(ClientCmd::SetGrant {
            client_id,
            grant,
            clear,
        }) => {
            let c = clients::set_client_grant(&op, &client_id, &grant.patch(&clear)?).await?;
            out(json, &c, || format!("set the grant ceiling of client {}", c.client_id));
        }
        OperatorCmd::Client(ClientCmd::Delete { client_id }) => {
            let c = clients::delete_client(&op, &client_id, None).await?;
            out(json, &c, || format!("deleted client {}", c.client_id));
        }
        OperatorCmd::ApiKey(KeyCmd::Create(k)) => {
            let principal = match (k.owner.service_account, k.owner.user) {
                (Some(s), _) => Principal::ServiceAccount(s),
                (_, Some(u)) => Principal::User(u),
                _ => return Err(CliError::NoOwner),
            };
            let exp = k.expires_in.as_deref().map(api_keys::parse_expiry).transpose()?;
            let tiles = k.grant.tiles.claim()?;
            let (key, text) =
                api_keys::create_api_key(&op, &principal, &k.scope, tiles.as_ref(), &k.grant.allowed_origins, exp)
                    .await?;
            let mut v = serde_json::to_value(&key).unwrap_or_default();
            v["api_key"] = text.clone().into();
            out(json, &v, || {
                format!("created API key {} (shown once, store it now):\n{text}", key.id)
            });
        }
        OperatorCmd::ApiKey(KeyCmd::List { org }) => {
            let l = store.list_api_keys(org.as_deref()).await?;
            out(json, &l, || {
                l.iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\t{}\t{}",
                            k.id,
                            k.prefix,
                            k.scopes.join(" "),
                            if k.revoked_at.is_some() { "revoked" } else { "active" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCmd::ApiKey(KeyCmd::Revoke { id }) => {
            let k = api_keys::revoke_api_key(&op, &id).await?;
            out(json, &k, || format!("revoked API key {}", k.id));
        }
        OperatorCmd::GeneratorToken(GenCmd::Show { user }) => {
            let (g, text) = store
                .generator_token(&user)
                .await?
                .ok_or_else(|| CredentialError::NotFound(format!("no generator token for {user}")))?;
            out(
                json,
                &serde_json::json!({ "id": g.id, "uid": g.uid, "token": text }),
                || text.clone(),
            );
        }
        OperatorCmd::GeneratorToken(GenCmd::Regenerate { user }) => {
            let (g, text) = named::regenerate(&op, &user).await?;
            out(
                json,
                &serde_json::json!({ "id": g.id, "uid": g.uid, "token": text }),
                || text.clone(),
            );
        }
        OperatorCmd::NamedToken(NamedCmd::List { user }) => {
            let l = store.list_named_tokens(user.as_deref()).await?;
            out(json, &l, || {
                l.iter()
                    .map(|t| format!("{}\t{}\t{}\t{}", t.id, t.name, t.action, t.resource_type))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCmd::NamedToken(NamedCmd::Revoke { id }) => {
            let t = named::revoke_named(&op, &id, None).await?;
            out(json, &t, || format!("revoked named token {}", t.id));
        }
        OperatorCmd::Token(TokenCmd::Mint {
            scope,
            ttl,
            org,
            sub,
            tiles,
        }) => {
            let scopes = scopes::check_scopes(cfg, &scope)?;
            let grant = tiles
                .claim()?
                .map(|c| Grant::from_claim(&c).map_err(CredentialError::BadTiles))
                .transpose()?;
            let ttl = config::parse_duration(&ttl).map_err(CliError::BadTtl)?;
            if ttl.is_zero() || ttl > cfg.tokens.max_ttl {
                return Err(CliError::TtlOutOfRange {
                    max: cfg.tokens.max_ttl.as_secs(),
                });
            }
            let token = mint(
                store,
                cfg,
                &scopes.join(" "),
                ttl.as_secs() as i64,
                org.as_deref(),
                &sub,
                grant.as_ref(),
            )
            .await?;
            out(
                json,
                &serde_json::json!({ "access_token": token, "expires_in": ttl.as_secs() }),
                || token.clone(),
            );
        }
        OperatorCmd::Keys(KeysCmd::Generate) => {
            crate::state::ensure_signing_key(store, cfg)
                .await
                .map_err(|e| CliError::SigningKey(e.to_string()))?;
            let keys = store.signing_keys().await?;
            let active = keys
                .iter()
                .filter(|k| k.retired_at.is_none())
                .max_by_key(|k| k.created_at)
                .map(|k| k.kid.clone())
                .unwrap_or_default();
            out(json, &serde_json::json!({ "active": active }), || {
                format!("active signing key: {active}")
            });
        }
        OperatorCmd::Keys(KeysCmd::Rotate) => {
            let kid = signing::rotate_keys(&op).await?;
            out(json, &serde_json::json!({ "kid": kid }), || {
                format!("new active signing key: {kid}")
            });
        }
        OperatorCmd::Keys(KeysCmd::List) => {
            let keys = store.signing_keys().await?;
            let v: Vec<_> = keys
                .iter()
                .map(|k| serde_json::json!({ "kid": k.kid, "alg": k.alg, "created_at": k.created_at, "retired_at": k.retired_at }))
                .collect();
            out(json, &v, || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\t{}",
                            k.kid,
                            k.alg,
                            if k.retired_at.is_some() { "retired" } else { "active" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OperatorCmd::Audit { limit } => {
            let l = store.list_audit(limit).await?;
            out(json, &l, || {
                l.iter()
                    .map(|a| format!("{}\t{}\t{}\t{}", a.created_at, a.actor, a.action, a.target))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

/// Sign an operator token with the active key from the store.
pub async fn mint(
    store: &Store,
    cfg: &Config,
    scope: &str,
    ttl: i64,
    org: Option<&str>,
    sub: &str,
    tiles: Option<&Grant>,
) -> Result<String, CliError> {
    crate::state::ensure_signing_key(store, cfg)
        .await
        .map_err(|e| CliError::SigningKey(e.to_string()))?;
    let recs = store.signing_keys().await?;
    let set = crate::auth::keys::KeySet::from_records(&recs, now_unix(), cfg.tokens.rotation_grace.as_secs() as i64)
        .map_err(|e| CliError::SigningKey(e.to_string()))?;
    let now = now_unix();
    let jti = crate::store::random_token("", 16);
    let token = TokenClaims::new(cfg, "access", sub, &jti, scope, now, Some(now + ttl))
        .org(org)
        .tiles(tiles)
        .sign(&set)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (names, groups, defaults) over the
    /// whole command tree.
    #[test]
    fn the_command_tree_passes_clap_checks() {
        super::Cli::command().debug_assert();
    }
}
