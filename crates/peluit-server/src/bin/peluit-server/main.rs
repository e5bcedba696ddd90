//! `peluit-server`: `demo` (the README's run command), `serve` for real use (reloading its
//! file on SIGHUP), `token` to issue and revoke investigator tokens and `institution add`.
//! Errors are one line of what happened and one line of what to do.

mod cli;

use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use peluit_proto::ids::InstitutionId;
use peluit_proto::manifest::fingerprint_words;
use peluit_proto::wordlist::Language;
use peluit_server::config::{Config, Overrides};
use peluit_server::reload::Reloader;
use peluit_server::state::{AppState, today, verify_stored};
use peluit_server::token_requests::{self, TokenRequest};
use peluit_server::tokens::{IssuedToken, token_hash};
use peluit_store::{CiphertextStore, ManifestBytes, SledStore, TokenHash};
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, ConfigArgs, InstitutionAction, TokenAction};

// Under many small submissions allocation was about a fifth of the server's CPU, much of
// it inside sled's transactions under the store's one writer lock: mimalloc's per-thread
// heaps shorten that lock's hold time, and so the queue behind it.
// docs/operating.md#performance
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("peluit-server: {error:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo { listen, dir } => runtime()?.block_on(demo(listen, dir)),
        Command::Serve { config: args } => {
            let config = load_config(&args)?;
            runtime()?.block_on(serve(config, args))
        }
        Command::Token { action } => token(action),
        Command::Institution {
            action:
                InstitutionAction::Add {
                    config,
                    id,
                    name,
                    manifest_key,
                },
        } => add_institution(&config, &id, &name, &manifest_key),
    }
}

/// Appends an institution to the configuration file: the new file is written beside it,
/// loaded exactly as `serve` would load it, and only then renamed over the old one.
fn add_institution(
    args: &ConfigArgs,
    id: &str,
    name: &str,
    manifest_key: &str,
) -> anyhow::Result<()> {
    let Some(path) = args.config.as_deref() else {
        bail!(
            "institution add needs the configuration file
give it with --config FILE"
        );
    };
    if name.contains(['\n', '\r']) {
        bail!(
            "the institution's name must be one line
choose a shorter display name"
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the config file {}; check the path given to --config",
            path.display()
        )
    })?;
    let quote = |value: &str| toml::Value::String(value.to_owned()).to_string();
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let updated = format!(
        "{text}{separator}\n[[institution]]\nid = {}\nname = {}\nmanifest_key = {}\n",
        quote(id),
        quote(name),
        quote(manifest_key)
    );
    let file_name = path
        .file_name()
        .context("--config must name a file")?
        .to_string_lossy();
    let temp = path.with_file_name(format!(".{file_name}.new"));
    std::fs::write(&temp, &updated).with_context(|| {
        format!(
            "cannot write {}; check the folder's permissions",
            temp.display()
        )
    })?;
    let checked = ConfigArgs {
        config: Some(temp.clone()),
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
    };
    let config = match load_config(&checked) {
        Ok(config) => config,
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            return Err(error.context(format!(
                "institution {id:?} was not added; {} is unchanged",
                path.display()
            )));
        }
    };
    std::fs::File::open(&temp)
        .and_then(|file| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path))
        .with_context(|| format!("cannot replace {}", path.display()))?;
    let added = config
        .institutions
        .iter()
        .find(|i| i.id.as_str() == id)
        .context("the added institution is in the loaded configuration")?;
    println!(
        "Added institution {} ({}) to {}.",
        added.id,
        added.name,
        path.display()
    );
    println!(
        "Manifest key fingerprint: {}",
        fingerprint_words(&added.manifest_key, Language::Id).join(" ")
    );
    println!(
        "Next: serve it without a restart: `systemctl reload peluit-server` (or send the server \
         SIGHUP; its log then says \"configuration reloaded\"). Then issue a desk token for it \
         (`peluit-server token issue --institution {}`, valid after the next reload) and \
         publish the institution's signed manifest with it.",
        added.id
    );
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load_config(args: &ConfigArgs) -> anyhow::Result<Config> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
    };
    Config::load(
        args.config.as_deref(),
        |k| std::env::var(k).ok(),
        &overrides,
    )
}

fn open_store(config: &Config) -> anyhow::Result<Arc<SledStore>> {
    SledStore::open(&config.data_dir)
        .map(Arc::new)
        .with_context(|| {
            format!(
                "cannot open the store in {}; is another peluit-server using it? Stop it, or \
             check the directory's permissions",
                config.data_dir.display()
            )
        })
}

fn spool_dir(config: &Config) -> anyhow::Result<std::path::PathBuf> {
    let mut name = config
        .data_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".spool");
    let dir = config.data_dir.with_file_name(name);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the spool directory {}", dir.display()))?;
    Ok(dir)
}

/// Installs the SIGTERM and SIGINT handlers now, so that a signal sent as soon as the
/// server says it is serving shuts it down cleanly instead of killing it; the future
/// completes on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

/// Reads the configuration again exactly as `serve` first read it (same file, same
/// environment variables, same flags), for a reload.
type ConfigLoader = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

async fn serve_with(
    config: Config,
    listener: tokio::net::TcpListener,
    store: Arc<SledStore>,
    reload: Option<ConfigLoader>,
) -> anyhow::Result<()> {
    let spool = spool_dir(&config)?;
    // Loading manifests and the mailbox index reads the store: keep it off the runtime.
    let running = config.clone();
    let state = tokio::task::spawn_blocking(move || {
        AppState::new(store, config.institutions, config.limits, spool)
    })
    .await
    .context("the start-up task failed")??;
    // Requests spooled by `token issue|revoke` while the store was held, by this server
    // or by one that stopped since.
    let reloader = Reloader::new(running, state.clone());
    let reloader = tokio::task::spawn_blocking(move || {
        reloader.apply_token_requests().log();
        reloader
    })
    .await
    .context("the start-up task failed")?;
    peluit_server::reload::spawn_on_hangup(reloader, reload)
        .context("cannot install the SIGHUP handler for configuration reloads")?;
    let shutdown = shutdown_signal()?;
    // Logged once every signal is handled, so a reload or stop sent after this line is
    // never fatal; the bound address, so that with port 0 the log names the port chosen.
    let bound = listener
        .local_addr()
        .context("the listener has an address")?;
    tracing::info!(listen = %bound, "serving");
    for institution in state.institutions() {
        if institution.current_opt().is_none() {
            tracing::warn!(
                institution = %institution.config.id,
                "no manifest published yet; reports are refused until one is"
            );
        }
    }
    peluit_server::state::spawn_sweeper(state.clone());
    peluit_server::serve(listener, state, shutdown)
        .await
        .context("the server stopped with an error")
}

async fn serve(config: Config, args: ConfigArgs) -> anyhow::Result<()> {
    let _ = peluit_server::logging::init(std::io::stderr);
    let store = open_store(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is the port in use? Choose another with --listen",
                config.listen
            )
        })?;
    let reload: ConfigLoader = Box::new(move || load_config(&args));
    serve_with(config, listener, store, Some(reload)).await
}

async fn demo(listen: std::net::SocketAddr, dir: std::path::PathBuf) -> anyhow::Result<()> {
    let _ = peluit_server::logging::init(std::io::stderr);
    if !listen.ip().is_loopback() {
        bail!(
            "the demo only serves on a loopback address (127.0.0.1), not {listen}\n\
             for real use run `peluit-server serve --config peluit.toml`"
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; is the port in use? Choose another with --listen")
        })?;
    let bound = listener
        .local_addr()
        .context("the listener has an address")?;
    let demo_dir = dir.clone();
    // Key files, the manifest and the store are blocking work: off the runtime.
    let (setup, store) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let setup = peluit_server::demo::prepare(&demo_dir, bound, today())?;
        let store = open_store(&setup.config)?;
        let institution = &setup.config.institutions[0];
        publish_if_new(
            store.as_ref(),
            &institution.id,
            &setup.manifest.to_json(),
            institution,
        )?;
        if let Some(hash) = setup.new_token_hash {
            store
                .put_token_hash(
                    &institution.id,
                    TokenHash::from_bytes(hash),
                    "demo desk",
                    today(),
                )
                .context("cannot store the demo token")?;
        }
        Ok((setup, store))
    })
    .await
    .context("the demo set-up task failed")??;
    let d = &setup.description;
    println!("Peluit demo — DEMO KEYS, not for real reports");
    println!();
    println!("  reporter page:     {}", d.page_url);
    println!("  upload form:       {}", d.submit_file_url);
    println!(
        "  institution:       {} ({})",
        d.institution, d.institution_name
    );
    println!("  manifest key:      {}", d.manifest_key);
    println!(
        "  fingerprint words: {}",
        d.manifest_key_fingerprint_words.join(" ")
    );
    println!("  fingerprint hex:   {}", d.manifest_key_fingerprint_hex);
    println!("  desk identity:     {}", d.files.desk_identity.display());
    println!(
        "  reply-signing key: {}",
        d.files.reply_signing_key.display()
    );
    println!("  escrow identity:   {}", d.files.escrow_identity.display());
    println!("  manifest key file: {}", d.files.manifest_key.display());
    println!("  manifest:          {}", d.files.manifest.display());
    println!("  investigator token:{}", d.files.token.display());
    println!("  store:             {}", d.files.data_dir.display());
    println!("  described in:      {}", dir.join("demo.json").display());
    println!();
    println!("Stop with Ctrl-C.");
    let mut config = setup.config;
    // Scripts (benchmarks, the crash loop) may lower the demo's proof-of-work difficulty
    // the same way `serve` reads it. docs/operating.md#configuration
    if let Ok(bits) = std::env::var("PELUIT_POW_BITS") {
        config.limits.pow_bits = bits
            .parse()
            .ok()
            .filter(|bits| *bits <= 40)
            .context("PELUIT_POW_BITS must be a whole number from 0 to 40")?;
    }
    serve_with(config, listener, store, None).await
}

/// Stores `manifest` unless the store already has it (same serial).
fn publish_if_new(
    store: &dyn CiphertextStore,
    id: &InstitutionId,
    manifest: &[u8],
    institution: &peluit_server::config::Institution,
) -> anyhow::Result<()> {
    let verified = verify_stored(institution, manifest, today())?;
    let latest = store.latest_manifest(id)?;
    if latest.is_some_and(|l| l.serial >= verified.serial()) {
        return Ok(());
    }
    store
        .put_manifest(
            id,
            verified.serial(),
            &ManifestBytes::new(manifest.to_vec()),
        )
        .context("cannot store the demo manifest")
}

/// The store for a `token` command: opened directly when no server holds it (with the
/// requests a server has not applied yet applied first, so the store says what is true),
/// or held by the running server, which applies spooled requests at its next reload.
enum TokenStore {
    Open(Arc<SledStore>),
    HeldByServer,
}

fn open_token_store(config: &Config) -> anyhow::Result<TokenStore> {
    let store = match SledStore::open(&config.data_dir) {
        Ok(store) => Arc::new(store),
        Err(error) if held_by_another_process(&error) => return Ok(TokenStore::HeldByServer),
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!(
                "cannot open the store in {}; check the directory's permissions",
                config.data_dir.display()
            )));
        }
    };
    let served: Vec<InstitutionId> = config.institutions.iter().map(|i| i.id.clone()).collect();
    let applied = token_requests::apply_pending(&config.data_dir, store.as_ref(), &served);
    for problem in &applied.problems {
        eprintln!("{problem}");
    }
    if applied.issued + applied.revoked > 0 {
        eprintln!("Applied waiting {}.", applied.describe());
    }
    Ok(TokenStore::Open(store))
}

/// sled names its directory lock only in the text of the I/O error it returns
/// ("could not acquire lock on …"), which the store passes on as the error's source.
fn held_by_another_process(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.to_string().contains("could not acquire lock") {
            return true;
        }
        cause = error.source();
    }
    false
}

fn spool_request(config: &Config, request: &TokenRequest) -> anyhow::Result<()> {
    token_requests::spool(&config.data_dir, request).with_context(|| {
        format!(
            "the running server holds the store, and the request cannot be written to {}\n\
             run the command as the user the server runs as (runuser -u peluit -- …)",
            token_requests::spool_dir(&config.data_dir).display()
        )
    })?;
    Ok(())
}

fn token(action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Issue {
            config,
            institution,
            label,
        } => {
            let (config, id) = token_target(&config, &institution)?;
            if token_requests::check_label(&label).is_err() {
                bail!("the label must be 1 to 256 bytes\nname the desk or person the token is for");
            }
            let store = open_token_store(&config)?;
            let token = IssuedToken::generate();
            let when = match store {
                TokenStore::Open(store) => {
                    store.put_token_hash(
                        &id,
                        TokenHash::from_bytes(token.hash()),
                        &label,
                        today(),
                    )?;
                    "It is valid now."
                }
                TokenStore::HeldByServer => {
                    let request = TokenRequest::issue(id.clone(), token.hash(), &label, today())?;
                    spool_request(&config, &request)?;
                    "The running server holds the store: the token becomes valid at the next \
                     `systemctl reload peluit-server` (or SIGHUP to the server)."
                }
            };
            println!("{}", token.expose_secret());
            eprintln!(
                "Issued a token for {id} labelled {label:?}. {when} It is shown only once; give \
                 it to the investigator's courier over a safe channel."
            );
            Ok(())
        }
        TokenAction::List {
            config,
            institution,
        } => {
            let (config, id) = token_target(&config, &institution)?;
            let TokenStore::Open(store) = open_token_store(&config)? else {
                let waiting = token_requests::pending(&config.data_dir).unwrap_or(0);
                bail!(
                    "cannot list the tokens: the running server holds the store ({waiting} token \
                     request(s) wait for its next reload)\n\
                     stop the server to list them (systemctl stop peluit-server), then start it \
                     again"
                );
            };
            for record in store.tokens(&id)? {
                println!(
                    "{}  {}  {}",
                    hex::encode(record.hash.as_bytes()),
                    record.created,
                    record.label
                );
            }
            Ok(())
        }
        TokenAction::Revoke {
            config,
            institution,
            token_file,
            hash,
        } => {
            let (config, id) = token_target(&config, &institution)?;
            let hash = match (token_file, hash) {
                (Some(path), _) => {
                    let mut text = Zeroizing::new(String::new());
                    if path.as_os_str() == "-" {
                        std::io::stdin().read_to_string(&mut text)?;
                    } else {
                        text = Zeroizing::new(
                            std::fs::read_to_string(&path)
                                .with_context(|| format!("cannot read {}", path.display()))?,
                        );
                    }
                    token_hash(text.trim())
                }
                (None, Some(hex_hash)) => {
                    peluit_proto::encoding::unhex_array::<32>(&hex_hash, "token hash").context(
                        "the hash must be 64 lowercase hex digits, as `token list` prints",
                    )?
                }
                (None, None) => bail!(
                    "say which token to revoke\npass --token-file FILE or --hash HEX (from `token list`)"
                ),
            };
            match open_token_store(&config)? {
                TokenStore::Open(store) => {
                    store
                        .revoke_token(&id, &TokenHash::from_bytes(hash))
                        .context(
                            "no such token\ncheck the institution and the hash with `token list`",
                        )?;
                    eprintln!("Revoked.");
                }
                TokenStore::HeldByServer => {
                    spool_request(
                        &config,
                        &TokenRequest::Revoke {
                            institution: id,
                            hash,
                        },
                    )?;
                    eprintln!(
                        "The running server holds the store: the token is revoked at the next \
                         `systemctl reload peluit-server` (or SIGHUP to the server), and works \
                         until then. If the server does not have it, its log says so."
                    );
                }
            }
            Ok(())
        }
    }
}

fn token_target(args: &ConfigArgs, institution: &str) -> anyhow::Result<(Config, InstitutionId)> {
    let config = load_config(args)?;
    let id: InstitutionId = institution.parse().map_err(|_| {
        anyhow::anyhow!("{institution:?} is not an institution id\nuse the id from the config file")
    })?;
    if !config.institutions.iter().any(|i| i.id == id) {
        bail!("institution {id} is not in the configuration\nadd it as an [[institution]] first");
    }
    Ok((config, id))
}
