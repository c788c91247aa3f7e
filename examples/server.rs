//! The paygo server: the OpenAI-compatible metering proxy in front of an upstream, with
//! every store embedded in one data directory (`docs/http.md`).
//!
//! ```sh
//! PAYGO_UPSTREAM_API_KEY=... cargo run --release --example server -- \
//!     --listen 127.0.0.1:8080 --upstream http://HOST:PORT --data-dir DIR \
//!     [--store postgres://USER@HOST/DB] \
//!     [--prices FILE --format litellm|paygo|openrouter] [--admin-token T] [--fx-rates FILE]
//! ```
//!
//! `--store postgres://...` keeps the balances in PostgreSQL (`docs/postgres.md`), shared by
//! every server started with the same URL; the default is the data directory's ledger.
//!
//! `--limiter redis://HOST:PORT` keeps the rate limits on Redis (`docs/ratelimit.md`, "The
//! shared store on Redis"), shared by every server started with the same URL and
//! `--limiter-prefix`; the default is this process's memory.
//!
//! It prints `listening on http://ADDR` once it serves, and stops on SIGTERM or ctrl-c:
//! no new connections, the calls in flight charged or released, the stores closed.
//! Everything it does is `paygo_http`; this file reads flags and wires signals.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use paygo::billing::CustomerId;
use paygo::billing::{BillingConfig, BillingStore};
use paygo::credits::Currency;
use paygo::invoice::{Party, SequenceStore};
use paygo::pricing::{DEFAULT_PRICES, PriceBook};
use paygo::ratelimit::{InProcessStore, Plan, Quota};
use paygo::time::SystemClock;
use paygo::vat::{Country, Seller, VatId};
use paygo_http::{
    Directory, PortalOptions, PortalSecret, Proxy, ProxyOptions, SellerOptions, ServerBuilder, ServerOptions, UsageLog,
    serve,
};
use paygo_postgres::{PgOptions, PgRecords, PgSequenceStore, PgStore};
use paygo_redis::{FailurePolicy, LimiterStore, RedisOptions, RedisStore};
use rust_decimal::Decimal;

const USAGE: &str = "usage: server --listen ADDR --upstream URL --data-dir DIR [--store embedded|postgres://USER@HOST[:PORT]/DB [--pg-schema NAME] [--usage-retention-days N]] [--prices FILE --format litellm|paygo|openrouter] [--admin-token T] [--fx-rates FILE] [--pass-through PREFIX]... [--body-limit BYTES] [--upstream-timeout-ms MS] [--requests-per-hour N --burst N] [--limiter memory|redis://HOST:PORT [--limiter-prefix P] [--limiter-fail open|closed]] [--portal-secure-cookies]
  --store: where balances, accounts, keys and usage records live: the data directory (embedded, the default) or PostgreSQL, shared by every server on the same database and schema (--pg-schema, default paygo); --usage-retention-days: each call's usage record is kept this long (default 30; 0 keeps them all), the hourly usage roll-ups for good
  the plan of every account: Pay As You Go (18,000 requests an hour, 60 at once) unless --requests-per-hour / --burst say otherwise
  --limiter: where rate limits live: this process (memory, the default) or Redis, shared by every server on the same server and --limiter-prefix (default paygo); --limiter-fail: a check while Redis does not answer is admitted (open, the default) or refused with 503 (closed)
  the upstream's key: PAYGO_UPSTREAM_API_KEY; the operator token: --admin-token or PAYGO_ADMIN_TOKEN
  the billing portal: http://ADDR/portal (docs/portal.md); its sessions are signed with PAYGO_PORTAL_SECRET (64 hex digits; give every replica the same) or else a secret kept in the data directory (portal.secret); --portal-secure-cookies when it is reached over TLS
  --fx-rates FILE: a JSON object of USD rates, {\"EUR\": \"0.9230\", \"PLN\": \"3.9512\"}, for the VAT amounts of invoices";

struct Args {
    listen: String,
    options: ServerOptions,
    /// A PostgreSQL URL and schema, or `None` for the embedded store.
    postgres: Option<(String, String)>,
    /// Redis options for the rate limits, or `None` for this process's memory.
    limiter: Option<RedisOptions>,
    /// How long a shared usage log keeps each call's record (`None`: for good).
    usage_retention: Option<Duration>,
}

/// How long a shared usage log keeps each call's record unless `--usage-retention-days`
/// says otherwise.
const USAGE_RETENTION_DAYS: u64 = 30;
/// How often a server prunes the shared usage log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The rate-limit store of every server: in memory or on Redis.
type Limiter = LimiterStore<CustomerId>;

/// Where rate limits live: `None` for this process, or Redis options.
fn limiter_of(
    limiter: Option<&str>,
    prefix: Option<String>,
    fail: Option<&str>,
) -> Result<Option<RedisOptions>, String> {
    match limiter {
        None | Some("memory") => {
            if prefix.is_some() || fail.is_some() {
                return Err(format!(
                    "--limiter-prefix / --limiter-fail need --limiter redis://...\n{USAGE}"
                ));
            }
            Ok(None)
        }
        Some(url) if url.starts_with("redis://") => {
            let mut options = RedisOptions::new(url, prefix.unwrap_or_else(|| "paygo".to_owned()));
            options.failure = match fail {
                None | Some("open") => FailurePolicy::Open,
                Some("closed") => FailurePolicy::Closed,
                Some(other) => return Err(format!("--limiter-fail {other:?}: expected open or closed\n{USAGE}")),
            };
            Ok(Some(options))
        }
        Some(other) => Err(format!(
            "--limiter {other:?}: expected memory or a redis:// URL\n{USAGE}"
        )),
    }
}

fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
}

fn number<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<T, String> {
    value(args, flag)?
        .parse::<T>()
        .map_err(|_| format!("{flag} needs a number\n{USAGE}"))
}

/// The portal's options: its secret from `PAYGO_PORTAL_SECRET`, or kept in the data
/// directory.
fn portal_options(data_dir: &std::path::Path, secure_cookies: bool) -> Result<PortalOptions, String> {
    let secret = if let Some(hex) = std::env::var("PAYGO_PORTAL_SECRET").ok().filter(|s| !s.is_empty()) {
        PortalSecret::from_hex(&hex).map_err(|e| format!("PAYGO_PORTAL_SECRET: {e}"))?
    } else {
        std::fs::create_dir_all(data_dir).map_err(|e| format!("--data-dir {}: {e}", data_dir.display()))?;
        PortalSecret::load_or_create(data_dir).map_err(|e| e.to_string())?
    };
    let mut portal = PortalOptions::new(secret);
    portal.secure_cookies = secure_cookies;
    Ok(portal)
}

/// Where balances live: `None` for the data directory's ledger, or a PostgreSQL URL and
/// schema.
fn store_of(store: Option<&str>, pg_schema: Option<String>) -> Result<Option<(String, String)>, String> {
    match store {
        None | Some("embedded") => {
            if pg_schema.is_some() {
                return Err(format!("--pg-schema needs --store postgres://...\n{USAGE}"));
            }
            Ok(None)
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Some((url.to_owned(), pg_schema.unwrap_or_else(|| "paygo".to_owned()))))
        }
        Some(other) => Err(format!(
            "--store {other:?}: expected embedded or a postgres:// URL\n{USAGE}"
        )),
    }
}

#[allow(clippy::too_many_lines)] // one flag a line, then the checks that relate them
fn parse() -> Result<Option<Args>, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut data_dir = None;
    let mut prices_path = None;
    let mut format = None;
    let mut admin_token = std::env::var("PAYGO_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    let mut fx_path = None;
    let mut pass_through = Vec::new();
    let mut body_limit = None;
    let mut timeout_ms = None;
    let mut requests_per_hour = None;
    let mut burst = None;
    let mut store = None;
    let mut pg_schema = None;
    let mut retention_days = None;
    let (mut limiter, mut limiter_prefix, mut limiter_fail) = (None, None, None);
    let mut secure_cookies = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = Some(value(&mut args, &arg)?),
            "--upstream" => upstream = Some(value(&mut args, &arg)?),
            "--data-dir" => data_dir = Some(PathBuf::from(value(&mut args, &arg)?)),
            "--store" => store = Some(value(&mut args, &arg)?),
            "--pg-schema" => pg_schema = Some(value(&mut args, &arg)?),
            "--usage-retention-days" => retention_days = Some(number::<u64>(&mut args, &arg)?),
            "--prices" => prices_path = Some(value(&mut args, &arg)?),
            "--format" => format = Some(value(&mut args, &arg)?),
            "--admin-token" => admin_token = Some(value(&mut args, &arg)?),
            "--fx-rates" => fx_path = Some(value(&mut args, &arg)?),
            "--pass-through" => pass_through.push(value(&mut args, &arg)?),
            "--body-limit" => body_limit = Some(number::<usize>(&mut args, &arg)?),
            "--upstream-timeout-ms" => timeout_ms = Some(number::<u64>(&mut args, &arg)?),
            "--requests-per-hour" => requests_per_hour = Some(number::<u64>(&mut args, &arg)?),
            "--burst" => burst = Some(number::<u64>(&mut args, &arg)?),
            "--limiter" => limiter = Some(value(&mut args, &arg)?),
            "--limiter-prefix" => limiter_prefix = Some(value(&mut args, &arg)?),
            "--limiter-fail" => limiter_fail = Some(value(&mut args, &arg)?),
            "--portal-secure-cookies" => secure_cookies = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let listen = listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?;
    if listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(format!(
            "--listen {listen:?}: expected an IP address and port, such as 127.0.0.1:8080\n{USAGE}"
        ));
    }
    let upstream = upstream.ok_or_else(|| format!("--upstream is required\n{USAGE}"))?;
    let data_dir = data_dir.ok_or_else(|| format!("--data-dir is required\n{USAGE}"))?;
    let prices = load_prices(prices_path, format.as_deref())?;
    let usd_rates = match fx_path {
        Some(path) => load_rates(&path)?,
        None => BTreeMap::new(),
    };
    let mut proxy = ProxyOptions::new(upstream);
    proxy.upstream_api_key = std::env::var("PAYGO_UPSTREAM_API_KEY").ok().filter(|k| !k.is_empty());
    proxy.admin_token = admin_token;
    proxy.pass_through = pass_through;
    proxy.portal = Some(portal_options(&data_dir, secure_cookies)?);
    if let Some(limit) = body_limit {
        proxy.body_limit_bytes = limit;
    }
    if let Some(ms) = timeout_ms {
        proxy.upstream_timeout_ms = ms;
    }
    let plan = plan(requests_per_hour, burst)?;
    let seller = seller()?;
    let postgres = store_of(store.as_deref(), pg_schema)?;
    if postgres.is_none() && retention_days.is_some() {
        return Err(format!(
            "--usage-retention-days needs --store postgres://... (the data directory's usage log keeps every record)\n{USAGE}"
        ));
    }
    let usage_retention = match retention_days.unwrap_or(USAGE_RETENTION_DAYS) {
        0 => None,
        days => Some(Duration::from_secs(days.checked_mul(86_400).ok_or_else(|| {
            format!(
                "--usage-retention-days {days}: expected at most {}\n{USAGE}",
                u64::MAX / 86_400
            )
        })?)),
    };
    let limiter = limiter_of(limiter.as_deref(), limiter_prefix, limiter_fail.as_deref())?;
    Ok(Some(Args {
        postgres,
        limiter,
        usage_retention,
        listen,
        options: ServerOptions {
            data_dir,
            prices,
            plan,
            proxy,
            seller,
            usd_rates,
            hold_timeout_ms: 600_000,
        },
    }))
}

/// Every account's plan: Pay As You Go, or its quota changed by the flags.
fn plan(requests_per_hour: Option<u64>, burst: Option<u64>) -> Result<Plan, String> {
    Ok(match (requests_per_hour, burst) {
        (None, None) => Plan::pay_as_you_go(),
        (per_hour, burst) => {
            let per_hour = per_hour.unwrap_or(18_000);
            let quota = Quota::per_hour(per_hour, burst.unwrap_or(60))
                .map_err(|e| format!("--requests-per-hour {per_hour} / --burst: {e}"))?;
            let mut plan = Plan::pay_as_you_go();
            plan.policies[0].quota = quota;
            plan
        }
    })
}

/// The seller of the invoices.
fn seller() -> Result<SellerOptions, String> {
    Ok(SellerOptions {
        party: Party {
            name: "paygo Ltd".into(),
            address: vec!["1 Grand Canal Square".into(), "Dublin D02 X576".into()],
            country: "IE".parse().map_err(|e| format!("{e:?}"))?,
            vat_id: Some(VatId::parse("IE6433435F").map_err(|e| e.to_string())?),
        },
        vat: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        series: "INV-2026".into(),
        credit_note_series: "CN-2026".into(),
    })
}

/// The price book: the file in its format, or the embedded default book.
fn load_prices(path: Option<String>, format: Option<&str>) -> Result<PriceBook, String> {
    let Some(path) = path else {
        if format.is_some() {
            return Err(format!("--format needs --prices FILE\n{USAGE}"));
        }
        return PriceBook::from_json(DEFAULT_PRICES).map_err(|e| format!("the embedded price book: {e}"));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read the price file {path}: {e}"))?;
    let options = paygo::pricing::litellm::ImportOptions::default();
    match format {
        Some("paygo") | None => PriceBook::from_json(&text),
        Some("litellm") => paygo::pricing::litellm::import(&text, &options).map(|(b, _)| b),
        Some("openrouter") => paygo::pricing::openrouter::import(&text, &options).map(|(b, _)| b),
        Some(other) => {
            return Err(format!(
                "--format {other:?}: expected litellm, paygo or openrouter\n{USAGE}"
            ));
        }
    }
    .map_err(|e| format!("the price file {path}: {e}"))
}

/// USD rates from a JSON object of decimal strings.
fn load_rates(path: &str) -> Result<BTreeMap<Currency, Decimal>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the rates file {path}: {e}"))?;
    let map: BTreeMap<String, String> = serde_json::from_str(&text)
        .map_err(|e| format!("the rates file {path}: expected {{\"EUR\": \"0.92\", ...}}: {e}"))?;
    let mut rates = BTreeMap::new();
    for (code, rate) in map {
        let currency = Currency::from_code(&code)
            .ok_or_else(|| format!("the rates file {path}: {code:?} is not a currency code"))?;
        let rate: Decimal = rate
            .parse()
            .map_err(|_| format!("the rates file {path}: the rate of {code} is not a decimal"))?;
        rates.insert(currency, rate);
    }
    Ok(rates)
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[allow(clippy::too_many_lines)] // flags, then each store, then serve: one sequence
fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("server: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let Args {
            listen,
            options,
            postgres,
            limiter,
            usage_retention,
        } = args;
        let Some(limiter) = open_limiter(limiter, &options.plan).await else {
            return ExitCode::FAILURE;
        };
        match postgres {
            None => match ServerBuilder::new(options, SystemClock::new()).limits(limiter).open() {
                Ok(proxy) => {
                    run(Arc::new(proxy), &listen, None, |proxy| {
                        // Group commit at work: how many syncs the calls shared.
                        let records = proxy
                            .gateway()
                            .billing()
                            .ledger()
                            .head()
                            .ok()
                            .flatten()
                            .map_or(0, |h| h.records);
                        format!("{records} ledger journal records (one sync each)")
                    })
                    .await
                }
                Err(e) => {
                    eprintln!("server: {e}");
                    ExitCode::FAILURE
                }
            },
            Some((url, schema)) => {
                let options_pg = PgOptions::new(url.clone()).with_schema(schema.clone());
                // The accounts, keys and usage records in the same schema: every replica
                // knows every key and every call.
                let shared = match PgRecords::open(&options_pg).await {
                    Ok(records) => match Directory::shared(records.clone(), Duration::from_secs(1)).await {
                        Ok(directory) => Ok((directory, UsageLog::shared(records))),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                };
                let (directory, usage) = match shared {
                    Ok(parts) => parts,
                    Err(e) => {
                        eprintln!("server: the shared account directory and usage log: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let billing = match PgStore::open(options_pg, BillingConfig::default()).await {
                    Ok(store) => store,
                    Err(e) => {
                        eprintln!("server: the PostgreSQL store: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                // The invoice numbers in the same schema, gapless across every replica.
                let opened = tokio::task::spawn_blocking(move || PgSequenceStore::open(&url, &schema)).await;
                let invoices = match opened
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                {
                    Ok(store) => store,
                    Err(e) => {
                        eprintln!("server: the PostgreSQL invoice numbering: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                // A second handle on the store: it records each top-up's credits and its
                // invoice number in one transaction.
                let joint = Arc::new(billing.clone());
                let opened = ServerBuilder::new(options, SystemClock::new())
                    .stores(billing, invoices)
                    .limits(limiter)
                    .directory(directory)
                    .usage(usage)
                    .open();
                match opened {
                    Ok(proxy) => {
                        let proxy = proxy.with_joint_top_ups(joint);
                        run(Arc::new(proxy), &listen, usage_retention, |proxy| {
                            let stats = proxy.gateway().billing().stats();
                            format!(
                                "{} billing commands in {} PostgreSQL transactions ({} run again after a conflict)",
                                stats.commands, stats.batches, stats.retries
                            )
                        })
                        .await
                    }
                    Err(e) => {
                        eprintln!("server: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    })
}

/// The rate-limit store: in memory, or on Redis (`None`, said on standard error, when
/// Redis cannot be opened).
async fn open_limiter(redis: Option<RedisOptions>, plan: &Plan) -> Option<Limiter> {
    match redis {
        None => Some(LimiterStore::InProcess(InProcessStore::new(plan))),
        Some(redis) => match RedisStore::open(redis, plan).await {
            Ok(store) => Some(LimiterStore::Redis(store)),
            Err(e) => {
                eprintln!("server: the Redis rate-limit store: {e}");
                None
            }
        },
    }
}

/// Reconciles, listens, serves until a signal (pruning the usage records older than
/// `retention` every hour), and reports what the stores did.
async fn run<B: BillingStore + 'static, S: SequenceStore + Send + Sync + 'static>(
    proxy: Arc<Proxy<B, Limiter, SystemClock, S>>,
    listen: &str,
    retention: Option<Duration>,
    report: impl FnOnce(&Proxy<B, Limiter, SystemClock, S>) -> String,
) -> ExitCode {
    match proxy.reconcile().await {
        Ok(0) => {}
        Ok(n) => eprintln!("server: rebuilt {n} usage records the ledger had charged (docs/http.md)"),
        Err(e) => {
            eprintln!("server: {e}");
            return ExitCode::FAILURE;
        }
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => {
            eprintln!("server: {e}");
            return ExitCode::FAILURE;
        }
    }
    let pruner = retention.map(|retention| {
        // A weak handle: the proxy is taken back whole when the server stops.
        let proxy = Arc::downgrade(&proxy);
        tokio::spawn(async move {
            loop {
                let Some(live) = proxy.upgrade() else { return };
                match live.prune_usage(retention).await {
                    Ok(0) => {}
                    Ok(n) => eprintln!("server: pruned {n} usage records older than the usage retention"),
                    Err(e) => eprintln!("server: pruning the usage records: {e} (tried again in an hour)"),
                }
                drop(live);
                tokio::time::sleep(PRUNE_EVERY).await;
            }
        })
    });
    let served = serve(listener, Arc::clone(&proxy), shutdown_signal()).await;
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    if let Err(e) = served {
        eprintln!("server: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "server: stopped; every call in flight was settled; {} usage records in {} usage-log syncs, {}",
        proxy.usage().len(),
        proxy.usage().syncs(),
        report(&proxy)
    );
    if proxy.unrecorded_calls() > 0 {
        eprintln!(
            "server: {} calls were charged without their usage record (the usage log failed); the next start rebuilds them from the ledger",
            proxy.unrecorded_calls()
        );
    }
    if let LimiterStore::Redis(store) = proxy.gateway().limiter().store() {
        eprintln!("server: the Redis rate-limit store: {:?}", store.stats());
    }
    ExitCode::SUCCESS
}
