//! The server as an operator runs it: every store embedded in one data directory, and
//! [`serve`] with a graceful shutdown.
//!
//! The data directory holds `ledger/` (the billing journal, locked by the process that has
//! it open: a second server on the same directory refuses to start), `invoices/` (the
//! invoice numbers), `accounts.jsonl` (accounts and key hashes) and `usage.jsonl` (one
//! record per charged call).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use paygo_billing::{BillingConfig, BillingStore, CustomerId, EmbeddedStore};
use paygo_credits::{CreditRate, Currency, FxRate};
use paygo_gateway::{Gateway, GatewayOptions, TopUpOptions, TopUps};
use paygo_invoice::{
    DocumentKind, FileSequenceStore, Invoicing, Party, RoundingRules, SequenceStore, Series, SeriesName,
};
use paygo_ledger::durable::OpenOptions;
use paygo_pricing::PriceBook;
use paygo_ratelimit::{AsyncStore, InProcessStore, Plan};
use paygo_time::Clock;
use paygo_vat::{NoOutsideEuRules, Seller};
use rust_decimal::Decimal;

use crate::accounts::Directory;
use crate::error::HttpError;
use crate::proxy::{Proxy, ProxyOptions};
use crate::usage::UsageLog;

/// The proxy with every store embedded (see the module docs).
pub type EmbeddedProxy<C> = ServerProxy<EmbeddedStore<C>, C, FileSequenceStore>;

/// The server's proxy on billing store `B` and invoice numbering `S` (the embedded ones, or
/// a database that several replicas share), with the other stores in the data directory.
pub type ServerProxy<B, C, S> = Proxy<B, InProcessStore<CustomerId, C>, C, S>;

/// The seller on the invoices of top-ups.
#[derive(Debug, Clone)]
pub struct SellerOptions {
    /// The seller as the invoice shows it (its VAT ID included).
    pub party: Party,
    /// The seller for VAT: its member state and OSS registration.
    pub vat: Seller,
    /// The invoice series (`INV-2026`), numbered with six digits.
    pub series: String,
    /// The credit-note series (`CN-2026`) of VAT refunds, numbered with six digits.
    pub credit_note_series: String,
}

/// How an embedded server is set up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// The price book.
    pub prices: PriceBook,
    /// Every account's rate-limit plan.
    pub plan: Plan,
    /// The proxy's options.
    pub proxy: ProxyOptions,
    /// The seller of the invoices.
    pub seller: SellerOptions,
    /// USD to other currencies (the national currency of a VAT amount: Article 230),
    /// one rate a currency used on every day; a top-up whose invoice needs a rate it does
    /// not have is credited, and its invoice refused until the payment is reported again
    /// with the rate known.
    pub usd_rates: BTreeMap<Currency, Decimal>,
    /// How long a hold lives without a capture, in milliseconds.
    pub hold_timeout_ms: u64,
}

/// Opens the stores in `options.data_dir` and builds the proxy on `clock`.
///
/// VAT IDs: an account's VAT ID registered by the operator (`POST /admin/v1/accounts`),
/// who confirms it with VIES first, is treated as confirmed; one a customer gives in the
/// portal is confirmed by [`crate::PortalOptions::vies`], and unconfirmed without it.
///
/// # Errors
///
/// [`HttpError::Config`] when a store cannot be opened (the ledger locked by another
/// process, damaged files, an unwritable directory), or a setting is wrong.
pub fn open_embedded<C: Clock + Clone + 'static>(
    options: ServerOptions,
    clock: C,
) -> Result<EmbeddedProxy<C>, HttpError> {
    let limits = InProcessStore::with_clock(&options.plan, clock.clone());
    open_embedded_with_limiter(options, clock, limits)
}

/// As [`open_embedded`], with the rate limits in `limits` (a store that several replicas
/// share, such as `paygo_redis::RedisStore`, whose limits are `options.plan`'s policies)
/// instead of this process.
///
/// # Errors
///
/// As [`open_embedded`].
pub fn open_embedded_with_limiter<L, C>(
    options: ServerOptions,
    clock: C,
    limits: L,
) -> Result<Proxy<EmbeddedStore<C>, L, C, FileSequenceStore>, HttpError>
where
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + Clone + 'static,
{
    let dir = &options.data_dir;
    let config = |what: String| HttpError::Config { what };
    std::fs::create_dir_all(dir).map_err(|e| config(format!("data directory {}: {e}", dir.display())))?;
    // The ledger first: its lock keeps a second server away from every other file.
    let billing = EmbeddedStore::open(
        dir.join("ledger"),
        BillingConfig::default(),
        clock.clone(),
        &OpenOptions::default(),
    )
    .map_err(|e| config(format!("{}: {e}", dir.join("ledger").display())))?;
    let invoices = FileSequenceStore::open(dir.join("invoices"))
        .map_err(|e| config(format!("{}: {e}", dir.join("invoices").display())))?;
    open_with_limiter(options, clock, billing, invoices, limits)
}

/// As [`open_embedded`], with balances in `billing` and invoice numbers in `invoices`
/// (stores on a database that several replicas share, such as `paygo_postgres::PgStore`
/// and `paygo_postgres::PgSequenceStore`) instead of the data directory's ledger and
/// numbering. The accounts and keys, the usage log and the rate limits stay in the data
/// directory and this process (`docs/postgres.md` says what that means for several
/// replicas).
///
/// # Errors
///
/// [`HttpError::Config`] when a store in the data directory cannot be opened, or a setting
/// is wrong.
pub fn open_with_stores<B, C, S>(
    options: ServerOptions,
    clock: C,
    billing: B,
    invoices: S,
) -> Result<ServerProxy<B, C, S>, HttpError>
where
    B: BillingStore + 'static,
    C: Clock + Clone + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let limits = InProcessStore::with_clock(&options.plan, clock.clone());
    open_with_limiter(options, clock, billing, invoices, limits)
}

/// As [`open_with_stores`], with the rate limits in `limits` (a store that several replicas
/// share, such as `paygo_redis::RedisStore`, whose limits are `options.plan`'s policies)
/// instead of this process.
///
/// # Errors
///
/// As [`open_with_stores`].
pub fn open_with_limiter<B, L, C, S>(
    options: ServerOptions,
    clock: C,
    billing: B,
    invoices: S,
    limits: L,
) -> Result<Proxy<B, L, C, S>, HttpError>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + Clone + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let dir = &options.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| HttpError::Config {
        what: format!("data directory {}: {e}", dir.display()),
    })?;
    let directory = Directory::open(dir)?;
    let usage = UsageLog::open(dir)?;
    open_with_parts_and_limiter(options, clock, billing, invoices, directory, usage, limits)
}

/// As [`open_with_stores`], with the account directory and the usage log given too: for
/// replicas that share them (`Directory::shared` and `UsageLog::shared`, with the
/// `postgres` feature), so that every replica knows every key and every call. Only the
/// rate limits then stay in this process.
///
/// # Errors
///
/// [`HttpError::Config`] when a setting is wrong.
pub fn open_with_parts<B, C, S>(
    options: ServerOptions,
    clock: C,
    billing: B,
    invoices: S,
    directory: Directory,
    usage: UsageLog,
) -> Result<ServerProxy<B, C, S>, HttpError>
where
    B: BillingStore + 'static,
    C: Clock + Clone + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let limits = InProcessStore::with_clock(&options.plan, clock.clone());
    open_with_parts_and_limiter(options, clock, billing, invoices, directory, usage, limits)
}

/// As [`open_with_parts`], with the rate limits in `limits` too (a store that several
/// replicas share, such as `paygo_redis::RedisStore`, whose limits are `options.plan`'s
/// policies): then nothing of a call's state stays in this process.
///
/// # Errors
///
/// [`HttpError::Config`] when a setting is wrong.
pub fn open_with_parts_and_limiter<B, L, C, S>(
    options: ServerOptions,
    clock: C,
    billing: B,
    invoices: S,
    directory: Directory,
    usage: UsageLog,
    limits: L,
) -> Result<Proxy<B, L, C, S>, HttpError>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + Clone + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let config = |what: String| HttpError::Config { what };
    let mut gateway_options = GatewayOptions::new(options.prices, clock);
    gateway_options.hold_timeout_ms = options.hold_timeout_ms;
    let gateway = Gateway::new(gateway_options, billing, limits);
    let series = Series::new(&options.seller.series, DocumentKind::Invoice, 6).map_err(|e| config(e.to_string()))?;
    let notes = Series::new(&options.seller.credit_note_series, DocumentKind::CreditNote, 6)
        .map_err(|e| config(e.to_string()))?;
    let invoicing = Invoicing::open(invoices, vec![series, notes]).map_err(|e| config(e.to_string()))?;
    let rates = options.usd_rates.clone();
    let fx = move |to: Currency, day: NaiveDate| -> Option<FxRate> {
        rates
            .get(&to)
            .and_then(|r| FxRate::new(Currency::USD, to, *r, day).ok())
    };
    let topups = TopUps::new(
        invoicing,
        TopUpOptions {
            seller: options.seller.party,
            seller_vat: options.seller.vat,
            series: SeriesName::new(&options.seller.series).map_err(|e| config(e.to_string()))?,
            credit_note_series: Some(
                SeriesName::new(&options.seller.credit_note_series).map_err(|e| config(e.to_string()))?,
            ),
            credit_rate: CreditRate::default(),
            rounding: RoundingRules::default(),
            confirmer: Arc::new(
                directory.confirmer(
                    options
                        .proxy
                        .portal
                        .as_ref()
                        .and_then(|p| p.vies.as_ref())
                        .map(|v| Arc::clone(&v.0)),
                ),
            ),
            outside_eu: Arc::new(NoOutsideEuRules),
            fx: Arc::new(fx),
        },
    );
    Ok(Proxy::new(gateway, directory, usage, topups, options.proxy)?.with_plan(options.plan))
}

/// Takes a stopped server's proxy back: waits until `proxy` is the last handle on it, for
/// at most `timeout`, and returns it (or gives the handle back if it is still shared then).
/// A connection task of [`serve`] may drop its handle an instant after `serve` returned, so
/// a caller that reopens the stores (their files are locked while the proxy lives) takes
/// the proxy back this way first.
///
/// # Errors
///
/// The handle itself, when another is still alive after `timeout`.
pub async fn take_back<P>(mut proxy: Arc<P>, timeout: std::time::Duration) -> Result<P, Arc<P>> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        match Arc::try_unwrap(proxy) {
            Ok(proxy) => return Ok(proxy),
            Err(shared) if tokio::time::Instant::now() >= until => return Err(shared),
            Err(shared) => proxy = shared,
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Serves `proxy` on `listener` until `shutdown` completes, then stops taking
/// connections, lets the requests in progress finish, and waits until every call in
/// flight (streams included) is charged or released.
///
/// # Errors
///
/// The listener's I/O errors.
pub async fn serve<B, L, C, S>(
    listener: tokio::net::TcpListener,
    proxy: Arc<Proxy<B, L, C, S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    use axum::serve::ListenerExt;
    let app = crate::router(Arc::clone(&proxy));
    // Small answers go out at once (no Nagle delay on a keep-alive connection).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    proxy.drain().await;
    Ok(())
}
