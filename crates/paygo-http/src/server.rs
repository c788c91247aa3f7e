//! The server as an operator runs it: [`ServerBuilder`] opens its stores, each in one data
//! directory unless given (a database or Redis that replicas share), and [`serve`] serves
//! it with a graceful shutdown.
//!
//! The data directory holds `ledger/` (the billing journal, locked by the process that has
//! it open: a second server on the same directory refuses to start), `invoices/` (the
//! invoice numbers), `accounts.jsonl` (accounts and key hashes) and `usage.jsonl` (one
//! record per charged call).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
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
    /// The data directory (created if missing), where the stores [`ServerBuilder`] is not
    /// given live.
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

/// Opens the stores in `options.data_dir` and builds the proxy on `clock`: shorthand for
/// `ServerBuilder::new(options, clock).open()`, every store in the data directory.
///
/// # Errors
///
/// As [`ServerBuilder::open`].
pub fn open_embedded<C: Clock + Clone + 'static>(
    options: ServerOptions,
    clock: C,
) -> Result<EmbeddedProxy<C>, HttpError> {
    ServerBuilder::new(options, clock).open()
}

/// Opens a server's stores and builds its proxy. Every store is in the data directory
/// (`options.data_dir`) and the rate limits in this process unless given:
///
/// | store | default | given with |
/// |---|---|---|
/// | balances and invoice numbers | `ledger/` and `invoices/` (locked: a second server on the directory refuses to start) | [`stores`](Self::stores), e.g. `paygo_postgres::PgStore` and `PgSequenceStore` |
/// | rate limits | this process ([`InProcessStore`] on `options.plan`) | [`limits`](Self::limits), e.g. `paygo_redis::RedisStore` |
/// | accounts and keys | `accounts.jsonl` | [`directory`](Self::directory), e.g. `Directory::shared` (`postgres` feature) |
/// | the usage log | `usage.jsonl` | [`usage`](Self::usage), e.g. `UsageLog::shared` (`postgres` feature) |
///
/// Replicas that share every store (`docs/postgres.md`) give all four: then nothing of a
/// call's state stays in the process.
///
/// VAT IDs: an account's VAT ID registered by the operator (`POST /admin/v1/accounts`),
/// who confirms it with VIES first, is treated as confirmed; one a customer gives in the
/// portal is confirmed by [`crate::PortalOptions::vies`], and unconfirmed without it.
///
/// ```
/// use paygo_http::{ProxyOptions, ServerBuilder, ServerOptions};
/// use paygo_time::SystemClock;
/// # fn seller() -> paygo_http::SellerOptions { paygo_http::SellerOptions {
/// #     party: paygo_invoice::Party { name: "paygo Ltd".into(), address: vec!["Dublin".into()],
/// #         country: "IE".parse().unwrap(), vat_id: Some(paygo_vat::VatId::parse("IE6433435F").unwrap()) },
/// #     vat: paygo_vat::Seller { country: paygo_vat::Country::Ireland, oss_registered: true },
/// #     series: "INV-2026".into(), credit_note_series: "CN-2026".into() } }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = paygo_testkit::store::TempDir::new("server-builder-doc");
/// let options = |data_dir: std::path::PathBuf| -> Result<ServerOptions, Box<dyn std::error::Error>> {
///     Ok(ServerOptions {
///         data_dir,
///         prices: paygo_pricing::PriceBook::from_json(paygo_pricing::DEFAULT_PRICES)?,
///         plan: paygo_ratelimit::Plan::pay_as_you_go(),
///         proxy: ProxyOptions::new("http://127.0.0.1:8000".to_owned()),
///         seller: seller(),
///         usd_rates: [(paygo_credits::Currency::EUR, "0.92".parse()?)].into(),
///         hold_timeout_ms: 600_000,
///     })
/// };
/// // Every store in the data directory:
/// let proxy = ServerBuilder::new(options(dir.0.join("one"))?, SystemClock::new()).open()?;
/// # drop(proxy);
///
/// // Balances, invoice numbers and rate limits in stores of the caller's (on a database
/// // and Redis that the replicas share: paygo_postgres::PgStore and PgSequenceStore,
/// // paygo_redis::RedisStore); the accounts, keys and usage in the data directory.
/// let clock = SystemClock::new();
/// let billing = paygo_billing::EmbeddedStore::open(
///     dir.0.join("ledger"),
///     paygo_billing::BillingConfig::default(),
///     clock,
///     &paygo_ledger::durable::OpenOptions::default(),
/// )?;
/// let invoices = paygo_invoice::FileSequenceStore::open(dir.0.join("invoices"))?;
/// let limits = paygo_ratelimit::InProcessStore::with_clock(&paygo_ratelimit::Plan::pay_as_you_go(), clock);
/// let proxy = ServerBuilder::new(options(dir.0.join("two"))?, clock)
///     .stores(billing, invoices)
///     .limits(limits)
///     .open()?;
/// assert!(dir.0.join("two/accounts.jsonl").exists());
/// assert!(!dir.0.join("two/ledger").exists());
/// # drop(proxy);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until opened"]
pub struct ServerBuilder<C, St = EmbeddedStores, Li = InProcessLimits> {
    options: ServerOptions,
    clock: C,
    stores: St,
    limits: Li,
    directory: Option<Directory>,
    usage: Option<UsageLog>,
}

/// [`ServerBuilder`]'s default balances and invoice numbers: the data directory's ledger
/// (`ledger/`) and numbering (`invoices/`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedStores;

/// The balances and invoice numbers given to [`ServerBuilder::stores`].
#[derive(Debug)]
pub struct GivenStores<B, S> {
    billing: B,
    invoices: S,
}

/// [`ServerBuilder`]'s default rate limits: this process's ([`InProcessStore`] on the
/// options' plan).
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcessLimits;

/// The rate-limit store given to [`ServerBuilder::limits`].
#[derive(Debug)]
pub struct GivenLimits<L>(L);

impl<C: Clock + Clone + 'static> ServerBuilder<C> {
    /// A server on `options` and `clock`, every store in `options.data_dir` (see the type's
    /// docs for what can be given instead).
    pub fn new(options: ServerOptions, clock: C) -> Self {
        ServerBuilder {
            options,
            clock,
            stores: EmbeddedStores,
            limits: InProcessLimits,
            directory: None,
            usage: None,
        }
    }
}

impl<C: Clock + Clone + 'static, St, Li> ServerBuilder<C, St, Li> {
    /// Balances in `billing` and invoice numbers in `invoices` (stores on a database that
    /// several replicas share, such as `paygo_postgres::PgStore` and
    /// `paygo_postgres::PgSequenceStore`) instead of the data directory's ledger and
    /// numbering.
    pub fn stores<B, S>(self, billing: B, invoices: S) -> ServerBuilder<C, GivenStores<B, S>, Li>
    where
        B: BillingStore + 'static,
        S: SequenceStore + Send + Sync + 'static,
    {
        ServerBuilder {
            options: self.options,
            clock: self.clock,
            stores: GivenStores { billing, invoices },
            limits: self.limits,
            directory: self.directory,
            usage: self.usage,
        }
    }

    /// The rate limits in `limits` (a store that several replicas share, such as
    /// `paygo_redis::RedisStore`, whose limits are `options.plan`'s policies) instead of
    /// this process.
    pub fn limits<L>(self, limits: L) -> ServerBuilder<C, St, GivenLimits<L>>
    where
        L: AsyncStore<CustomerId> + 'static,
    {
        ServerBuilder {
            options: self.options,
            clock: self.clock,
            stores: self.stores,
            limits: GivenLimits(limits),
            directory: self.directory,
            usage: self.usage,
        }
    }

    /// The accounts and keys in `directory` (for replicas, `Directory::shared` with the
    /// `postgres` feature, so that every replica knows every key) instead of the data
    /// directory's `accounts.jsonl`.
    pub fn directory(mut self, directory: Directory) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The usage records in `usage` (for replicas, `UsageLog::shared` with the `postgres`
    /// feature, so that every replica's usage endpoints see every call) instead of the
    /// data directory's `usage.jsonl`.
    pub fn usage(mut self, usage: UsageLog) -> Self {
        self.usage = Some(usage);
        self
    }
}

impl<C: Clock + Clone + 'static> ServerBuilder<C, EmbeddedStores, InProcessLimits> {
    /// Opens the stores and builds the proxy: every store in the data directory, the rate
    /// limits in this process.
    ///
    /// # Errors
    ///
    /// [`HttpError::Config`] when a store cannot be opened (the ledger locked by another
    /// process, damaged files, an unwritable directory), or a setting is wrong (a series
    /// name, the portal's options); [`HttpError::Storage`] when the account directory or
    /// the usage log cannot be read or holds a line that is not one of their records.
    pub fn open(self) -> Result<EmbeddedProxy<C>, HttpError> {
        let ServerBuilder {
            options,
            clock,
            directory,
            usage,
            ..
        } = self;
        let (billing, invoices) = embedded_stores(&options.data_dir, &clock)?;
        let limits = InProcessStore::with_clock(&options.plan, clock.clone());
        build(options, clock, billing, invoices, directory, usage, limits)
    }
}

impl<C, L> ServerBuilder<C, EmbeddedStores, GivenLimits<L>>
where
    C: Clock + Clone + 'static,
    L: AsyncStore<CustomerId> + 'static,
{
    /// Opens the stores and builds the proxy: balances and invoice numbers in the data
    /// directory, the rate limits in the given store.
    ///
    /// # Errors
    ///
    /// As [`ServerBuilder::open`] with every store embedded.
    pub fn open(self) -> Result<Proxy<EmbeddedStore<C>, L, C, FileSequenceStore>, HttpError> {
        let ServerBuilder {
            options,
            clock,
            limits: GivenLimits(limits),
            directory,
            usage,
            ..
        } = self;
        let (billing, invoices) = embedded_stores(&options.data_dir, &clock)?;
        build(options, clock, billing, invoices, directory, usage, limits)
    }
}

impl<C, B, S> ServerBuilder<C, GivenStores<B, S>, InProcessLimits>
where
    C: Clock + Clone + 'static,
    B: BillingStore + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    /// Opens the stores not given and builds the proxy: balances and invoice numbers in
    /// the given stores, the rate limits in this process.
    ///
    /// # Errors
    ///
    /// As [`ServerBuilder::open`] with every store embedded, for the stores still in the
    /// data directory.
    pub fn open(self) -> Result<ServerProxy<B, C, S>, HttpError> {
        let ServerBuilder {
            options,
            clock,
            stores: GivenStores { billing, invoices },
            directory,
            usage,
            ..
        } = self;
        let limits = InProcessStore::with_clock(&options.plan, clock.clone());
        build(options, clock, billing, invoices, directory, usage, limits)
    }
}

impl<C, B, S, L> ServerBuilder<C, GivenStores<B, S>, GivenLimits<L>>
where
    C: Clock + Clone + 'static,
    B: BillingStore + 'static,
    S: SequenceStore + Send + Sync + 'static,
    L: AsyncStore<CustomerId> + 'static,
{
    /// Opens the stores not given and builds the proxy: balances, invoice numbers and rate
    /// limits in the given stores.
    ///
    /// # Errors
    ///
    /// As [`ServerBuilder::open`] with every store embedded, for the stores still in the
    /// data directory.
    pub fn open(self) -> Result<Proxy<B, L, C, S>, HttpError> {
        let ServerBuilder {
            options,
            clock,
            stores: GivenStores { billing, invoices },
            limits: GivenLimits(limits),
            directory,
            usage,
        } = self;
        build(options, clock, billing, invoices, directory, usage, limits)
    }
}

/// Creates the data directory `dir` if it is missing.
fn data_dir(dir: &Path) -> Result<(), HttpError> {
    std::fs::create_dir_all(dir).map_err(|e| HttpError::Config {
        what: format!("data directory {}: {e}", dir.display()),
    })
}

/// Opens the data directory's ledger and invoice numbering.
fn embedded_stores<C: Clock + Clone + 'static>(
    dir: &Path,
    clock: &C,
) -> Result<(EmbeddedStore<C>, FileSequenceStore), HttpError> {
    let config = |what: String| HttpError::Config { what };
    data_dir(dir)?;
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
    Ok((billing, invoices))
}

/// Opens the account directory and the usage log in the data directory unless given, and
/// builds the proxy.
fn build<B, L, C, S>(
    options: ServerOptions,
    clock: C,
    billing: B,
    invoices: S,
    directory: Option<Directory>,
    usage: Option<UsageLog>,
    limits: L,
) -> Result<Proxy<B, L, C, S>, HttpError>
where
    B: BillingStore + 'static,
    L: AsyncStore<CustomerId> + 'static,
    C: Clock + Clone + 'static,
    S: SequenceStore + Send + Sync + 'static,
{
    let dir = &options.data_dir;
    if directory.is_none() || usage.is_none() {
        data_dir(dir)?;
    }
    let directory = match directory {
        Some(directory) => directory,
        None => Directory::open(dir)?,
    };
    let usage = match usage {
        Some(usage) => usage,
        None => UsageLog::open(dir)?,
    };
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
