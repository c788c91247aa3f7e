//! A day of traffic through paygo's metering proxy (`paygo-http`) over real HTTP, seeded
//! and deterministic: the main job of the `gateway` example, and what its integration
//! test checks. Not published: it makes traffic for the example and the tests, and holds
//! no billing rule.
//!
//! The day starts a fake OpenAI-compatible upstream (`paygo_testkit::upstream`) and the
//! proxy (`paygo_http::open_embedded`, every store in the day's data directory) on
//! `127.0.0.1`, inside a tokio runtime of its own, on one [`ManualClock`] that the day
//! sets before each call, so that simulated time drives prices, rate limits and holds.
//! Accounts in several countries are created, paid and given their auto top-up rules
//! through the operator's HTTP endpoints; every call is a real HTTP request with an API
//! key (chat completions, some streamed, and embeddings; some fail upstream, a few streams
//! are cut, one account bursts past its rate limit, accounts without auto top-up run out
//! and are refused). Auto top-up requests are read from the billing store after each
//! charged call and paid or declined by the operator, in process, as a payment service
//! would; every paid top-up is invoiced with the VAT of the buyer's country, and each
//! account gets a usage statement. At the end the ledger is checked against what the day
//! reported and what the clients saw. All the billing decisions are the crates'; this
//! module only makes traffic.

use std::collections::BTreeMap;
use std::sync::Arc;

// `SplitMix64`: the same seed gives the same day on every machine.
use paygo_testkit::rng::Rng;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use paygo_billing::{
    AutoTopUpRule, BREAKAGE, Billing, BillingStore, CardKind, CustomerId, EntryKind, FUNDING, HISTORY_PAGE_MAX,
    HistoryQuery, PaymentMethod, PaymentOutcome, REVENUE, TopUpAmount, TopUpRequest,
};
use paygo_credits::{CreditRate, Credits, Currency, ExactCredits};
use paygo_gateway::{Buyer, PaidTopUp};
use paygo_http::{EmbeddedProxy, ProxyOptions, SellerOptions, ServerOptions, Settlement, open_embedded};
use paygo_invoice::{Charge, Party, Statement, StatementRequest};
use paygo_ledger::{Clock, ManualClock, SharedLedger};
use paygo_pricing::litellm::{ImportOptions, import};
use paygo_pricing::{Mode, PriceBook, QuoteRequest, ServiceTier};
use paygo_ratelimit::Plan;
use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};
use paygo_vat::{Country, CountryCode, LocationEvidence, Seller, VatId};
use serde_json::{Value, json};

/// The price book the simulation uses when none is given.
pub use paygo_pricing::DEFAULT_PRICES;

/// Where the prices come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    /// [`DEFAULT_PRICES`].
    Embedded,
    /// A price book in paygo's format (the file's text).
    Paygo(String),
    /// LiteLLM's catalog (the file's text).
    LiteLlm(String),
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayOptions {
    /// Accounts.
    pub accounts: usize,
    /// Calls over the day (a burst of one account comes on top).
    pub requests: usize,
    /// The seed: the same seed gives the same day.
    pub seed: u64,
    /// The day (UTC).
    pub day: NaiveDate,
    /// Prices.
    pub prices: PriceSource,
    /// Percent of upstream calls that fail.
    pub upstream_failure_percent: u64,
    /// Percent of auto top-up payments that are declined.
    pub payment_decline_percent: u64,
    /// Percent of chat calls that are streamed (half of them ask for the usage chunk).
    pub stream_percent: u64,
    /// The proxy's data directory (`ledger/`, `invoices/`, `accounts.jsonl`,
    /// `usage.jsonl`): a folder that does not exist yet or is empty. `None`: a fresh
    /// folder under the system's temporary folder, removed at the end.
    pub ledger_dir: Option<std::path::PathBuf>,
}

impl Default for DayOptions {
    fn default() -> DayOptions {
        DayOptions {
            accounts: 12,
            requests: 12_000,
            seed: 7,
            // A valid date: the default is never used.
            day: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default(),
            prices: PriceSource::Embedded,
            upstream_failure_percent: 3,
            payment_decline_percent: 20,
            stream_percent: 30,
            ledger_dir: None,
        }
    }
}

/// What happened to one account during the day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AccountReport {
    /// The account id (as `POST /admin/v1/accounts` gave it).
    pub id: u128,
    /// The customer's name.
    pub name: String,
    /// Its country.
    pub country: String,
    /// Paid top-ups (initial and automatic).
    pub top_ups: u64,
    /// Credits bought.
    pub top_up_credits: i64,
    /// Money paid for them, net of VAT, in USD cents.
    pub top_up_cents: i64,
    /// Payment attempts refused by the payment method check.
    pub refused_payment_methods: u64,
    /// Auto top-ups requested.
    pub auto_top_ups_requested: u64,
    /// Auto top-up payments declined.
    pub auto_top_ups_declined: u64,
    /// Calls sent.
    pub calls: u64,
    /// Calls sent streamed.
    pub streamed: u64,
    /// Streams the upstream cut (charged by the settle-without-usage rule).
    pub cut_streams: u64,
    /// Calls completed and charged.
    pub completed: u64,
    /// Calls that failed upstream (the hold was released: free).
    pub failed_upstream: u64,
    /// Calls refused by the rate limit (429).
    pub refused_rate_limit: u64,
    /// Calls refused for lack of balance (403).
    pub refused_balance: u64,
    /// Credits charged, as the responses said (`meta.usage.credits_used`).
    pub credits_spent: i64,
    /// The exact credits of the charges, as text (the carrier keeps the two within ½):
    /// each charged call's usage from the usage log, quoted again.
    pub exact_credits_quoted: String,
    /// The balance at the end of the day (`GET /v1/billing/balance`).
    pub balance: i64,
}

/// The day's HTTP traffic, as the clients and the fake upstream counted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// Requests sent to the proxy (operator, metered and account endpoints).
    pub requests: u64,
    /// Metered calls sent (chat completions and embeddings).
    pub calls: u64,
    /// Chat calls streamed.
    pub streamed: u64,
    /// Streamed calls that asked for the usage chunk (`stream_options.include_usage`).
    pub streamed_with_usage: u64,
    /// Streams the upstream cut.
    pub cut_streams: u64,
    /// Embedding calls.
    pub embeddings: u64,
    /// Requests the fake upstream received.
    pub upstream_requests: u64,
}

/// One consistency check of the day and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// The figures compared.
    pub detail: String,
}

/// Everything the day produced.
#[derive(Debug, Clone)]
pub struct DayReport {
    /// Per account.
    pub accounts: Vec<AccountReport>,
    /// The invoices of the day's top-ups, in number order.
    pub invoices: Vec<paygo_invoice::Document>,
    /// Each account's usage statement.
    pub statements: Vec<(u128, Statement)>,
    /// The consistency checks.
    pub checks: Vec<Check>,
    /// A sample response usage section (JSON), as the proxy returned it.
    pub sample_usage_section: String,
    /// The models the traffic used.
    pub models: Vec<String>,
    /// The HTTP traffic.
    pub traffic: Traffic,
}

impl DayReport {
    /// Whether every check held.
    pub fn consistent(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Writes every invoice and statement (HTML, text and JSON), `summary.json` and
    /// `manifest.txt` (the list of the other files) into `dir`, and returns the files
    /// written, relative to `dir`.
    ///
    /// # Errors
    ///
    /// The first file that could not be written, with the reason.
    pub fn write(&self, dir: &std::path::Path) -> Result<Vec<String>, SimulationError> {
        let io = |what: &str, e: &dyn std::fmt::Display| SimulationError::Setup(format!("cannot write {what}: {e}"));
        for sub in ["invoices", "statements"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| io(&dir.join(sub).display().to_string(), &e))?;
        }
        let mut files: Vec<(String, String)> = Vec::new();
        for doc in &self.invoices {
            let number = doc.number().to_string();
            files.push((format!("invoices/{number}.html"), doc.to_html()));
            files.push((format!("invoices/{number}.txt"), doc.to_text()));
            files.push((format!("invoices/{number}.json"), doc.to_json().map_err(setup)?));
        }
        for (account, statement) in &self.statements {
            files.push((format!("statements/acct_{account}.html"), statement.to_html()));
            files.push((format!("statements/acct_{account}.txt"), statement.to_text()));
            files.push((
                format!("statements/acct_{account}.json"),
                statement.to_json().map_err(setup)?,
            ));
        }
        let summary =
            json!({"accounts": self.accounts, "checks": self.checks, "models": self.models, "traffic": self.traffic});
        files.push((
            "summary.json".into(),
            serde_json::to_string_pretty(&summary).map_err(setup)?,
        ));
        let mut written = Vec::with_capacity(files.len());
        for (name, text) in files {
            std::fs::write(dir.join(&name), text).map_err(|e| io(&name, &e))?;
            written.push(name);
        }
        let manifest = written.join("\n") + "\n";
        std::fs::write(dir.join("manifest.txt"), manifest).map_err(|e| io("manifest.txt", &e))?;
        Ok(written)
    }
}

/// Errors of a simulation run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulationError {
    /// The price book could not be loaded, or has no chat model to call.
    #[error("prices: {0}")]
    Prices(String),
    /// A crate refused something the simulation needs (a bug in the simulation or a crate).
    #[error("{0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(e: E) -> SimulationError {
    SimulationError::Setup(e.to_string())
}

/// A customer of the day.
struct Profile {
    name: &'static str,
    country: &'static str,
    address: [&'static str; 2],
    vat_id: Option<&'static str>,
    method: PaymentMethod,
    /// Whether the account has an auto top-up rule.
    auto_top_up: bool,
}

const PROFILES: [Profile; 8] = [
    Profile {
        name: "Erika Mustermann",
        country: "DE",
        address: ["Unter den Linden 5", "10117 Berlin"],
        vat_id: None,
        method: PaymentMethod::Card(CardKind::Credit),
        auto_top_up: true,
    },
    Profile {
        name: "Société Exemple SARL",
        country: "FR",
        address: ["12 rue de la Paix", "75002 Paris"],
        vat_id: Some("FR40303265045"),
        method: PaymentMethod::Card(CardKind::Debit),
        auto_top_up: true,
    },
    Profile {
        name: "Acme Robotics Inc.",
        country: "US",
        address: ["1 Market Street", "San Francisco, CA 94105"],
        vat_id: None,
        method: PaymentMethod::PayPal,
        auto_top_up: false,
    },
    Profile {
        name: "Jan Kowalski",
        country: "PL",
        address: ["ul. Marszałkowska 10", "00-590 Warszawa"],
        vat_id: None,
        method: PaymentMethod::Crypto,
        auto_top_up: false,
    },
    Profile {
        name: "Aoife Byrne",
        country: "IE",
        address: ["3 Harcourt Street", "Dublin D02"],
        vat_id: None,
        method: PaymentMethod::Card(CardKind::Credit),
        auto_top_up: true,
    },
    Profile {
        name: "Voorbeeld B.V.",
        country: "NL",
        address: ["Damrak 1", "1012 LG Amsterdam"],
        vat_id: Some("NL004495445B01"),
        method: PaymentMethod::Card(CardKind::Credit),
        auto_top_up: true,
    },
    Profile {
        name: "Lucía García",
        country: "ES",
        address: ["Calle Mayor 1", "28013 Madrid"],
        vat_id: None,
        method: PaymentMethod::Card(CardKind::Debit),
        auto_top_up: false,
    },
    Profile {
        name: "Kaito Tanaka",
        country: "JP",
        address: ["1-1 Chiyoda", "Tokyo 100-0001"],
        vat_id: None,
        method: PaymentMethod::Card(CardKind::Credit),
        auto_top_up: true,
    },
];

/// The models the traffic calls: the default book's, or up to eight chat models of a
/// given book, preferring well-known ones.
fn pick_models(book: &PriceBook) -> Vec<String> {
    const PREFERRED: [&str; 8] = [
        "gpt-4o",
        "gpt-4o-mini",
        "o3",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "gemini-2.5-pro",
        "deepseek-chat",
        "text-embedding-3-small",
    ];
    let mut models: Vec<String> = PREFERRED
        .iter()
        .filter(|m| book.model(m).is_ok())
        .map(|m| (*m).to_owned())
        .collect();
    if models.len() < 3 {
        for spec in book.models() {
            if models.len() >= 8 {
                break;
            }
            let priced = spec.versions.iter().any(|v| {
                v.prices.get(paygo_pricing::Component::InputToken).is_some()
                    && v.prices.get(paygo_pricing::Component::OutputToken).is_some()
            });
            if spec.mode == Mode::Chat && priced && !models.contains(&spec.id) {
                models.push(spec.id.clone());
            }
        }
    }
    models
}

fn load_prices(source: &PriceSource) -> Result<PriceBook, SimulationError> {
    match source {
        PriceSource::Embedded => PriceBook::from_json(DEFAULT_PRICES),
        PriceSource::Paygo(text) => PriceBook::from_json(text),
        PriceSource::LiteLlm(text) => import(text, &ImportOptions::default()).map(|(book, _)| book),
    }
    .map_err(|e| {
        let format = match source {
            PriceSource::Embedded => "the embedded book",
            PriceSource::Paygo(_) => "paygo format",
            PriceSource::LiteLlm(_) => "LiteLLM format",
        };
        SimulationError::Prices(format!("{format}: {e}"))
    })
}

/// The operator's token of the day's proxy.
const ADMIN_TOKEN: &str = "paygo-day-operator";

/// Sample exchange rates of the day, USD to each national currency, for the VAT shown in
/// the invoices.
fn usd_rates() -> BTreeMap<Currency, rust_decimal::Decimal> {
    let mut rates = BTreeMap::new();
    rates.insert(Currency::EUR, rust_decimal::Decimal::new(9230, 4));
    rates.insert(Currency::PLN, rust_decimal::Decimal::new(39_512, 4));
    rates
}

/// The day's seller, as its invoices show it and for VAT.
fn seller() -> Result<SellerOptions, SimulationError> {
    Ok(SellerOptions {
        party: Party {
            name: "paygo Ltd".into(),
            address: vec!["1 Grand Canal Square".into(), "Dublin D02 X576".into()],
            country: "IE".parse().map_err(setup)?,
            vat_id: Some(VatId::parse("IE6433435F").map_err(setup)?),
        },
        vat: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        series: "INV-2026".into(),
        credit_note_series: "CN-2026".into(),
    })
}

/// The name of a payment method in `POST /admin/v1/accounts/{id}/payments`.
fn method_name(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Card(CardKind::Debit) => "debit_card",
        PaymentMethod::Card(CardKind::Prepaid) => "prepaid_card",
        PaymentMethod::PayPal => "paypal",
        PaymentMethod::Crypto => "crypto",
        PaymentMethod::GiftCard => "gift_card",
        PaymentMethod::Card(_) => "card",
    }
}

/// What a profile's customer looks like on an invoice and for VAT when the operator pays
/// an auto top-up: as the payment endpoint builds it (the account's name, address, country
/// and VAT ID; for a consumer, the country of the IP address and, for a card, of the card).
fn buyer(profile: &Profile, name: &str) -> Result<Buyer, SimulationError> {
    let country: CountryCode = profile.country.parse().map_err(setup)?;
    let consumer = profile.vat_id.is_none();
    let card = matches!(profile.method, PaymentMethod::Card(_));
    Ok(Buyer {
        name: name.to_owned(),
        address: profile.address.iter().map(|l| (*l).to_owned()).collect(),
        evidence: LocationEvidence {
            billing_country: Some(country),
            ip_country: consumer.then_some(country),
            card_country: (consumer && card).then_some(country),
        },
        vat_id: profile.vat_id.map(VatId::parse).transpose().map_err(setup)?,
    })
}

/// The auto top-up rule of account `k`: below 7.50 USD of credits, $10 (even accounts) or
/// back up to $15 (odd ones), at most three requests an hour.
fn auto_top_up_rule(k: usize, profile: &Profile) -> Result<AutoTopUpRule, SimulationError> {
    Ok(AutoTopUpRule {
        enabled: true,
        threshold: Credits::new(15_000_000),
        amount: if k.is_multiple_of(2) {
            TopUpAmount::Fixed(paygo_credits::Money::from_minor(1000, Currency::USD).map_err(setup)?)
        } else {
            TopUpAmount::TargetBalance(Credits::new(30_000_000))
        },
        method: profile.method,
        requests_per_window_max: 3,
        window_ms: 3_600_000,
        backoff_ms: 60_000,
        backoff_max_ms: 900_000,
        monthly_cap: None,
        disable_after_declines: None,
        buyer_tax_id: None,
        purchase_order: None,
    })
}

/// Text a prompt is made of: ordinary prose, repeated as needed (ASCII: one byte a
/// character, so that the fake upstream's count of about four characters a token holds).
const PROSE: &str = "Summarise the quarterly report below for the board, keeping every figure exact \
and noting where the numbers changed since the last quarter. The revenue grew in three regions \
while costs stayed flat; the support team answered most tickets within a day, and the new \
billing system went live without incident. List the risks, then the decisions needed. ";

/// A user message of `tokens` prompt tokens as the fake upstream counts them (characters
/// plus four, divided by four), ending with `directives`.
fn prompt_text(tokens: u64, directives: &str, embedding: bool) -> String {
    // A chat message counts 4 characters more than its text; an embedding input does not.
    let chars = if embedding {
        tokens * 4
    } else {
        (tokens * 4).saturating_sub(4)
    };
    let filler = usize::try_from(chars).unwrap_or(0).saturating_sub(directives.len() + 1);
    let mut text = String::with_capacity(filler + directives.len() + 1);
    while text.len() < filler {
        let take = (filler - text.len()).min(PROSE.len());
        text.push_str(&PROSE[..take]);
    }
    text.push(' ');
    text.push_str(directives);
    text
}

/// One planned call.
struct Planned {
    at_ns: u64,
    account: usize,
}

/// Runs the day: starts the fake upstream and the proxy on loopback in a tokio runtime of
/// its own, opens the accounts and sends every call over HTTP, then checks everything.
/// `progress` is told how many calls of how many are done.
///
/// # Errors
///
/// [`SimulationError::Prices`] for a price book that cannot be loaded or has no chat
/// model; [`SimulationError::Setup`] if the runtime, a server or a crate refuses the
/// day's setup, or the proxy answers a call in a way the day does not expect.
pub fn run_day(options: &DayOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<DayReport, SimulationError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| setup(format!("the tokio runtime: {e}")))?;
    runtime.block_on(day(options, progress))
}

/// The proxy as an operator runs it, on `dir` and `clock`, in front of `upstream`: the
/// Pay As You Go plan for every account, the day's seller and exchange rates, and the
/// operator token.
fn open_proxy(
    book: PriceBook,
    dir: &std::path::Path,
    upstream: String,
    clock: ManualClock,
) -> Result<EmbeddedProxy<ManualClock>, SimulationError> {
    let mut proxy = ProxyOptions::new(upstream);
    proxy.admin_token = Some(ADMIN_TOKEN.into());
    let options = ServerOptions {
        data_dir: dir.to_path_buf(),
        prices: book,
        plan: Plan::pay_as_you_go(),
        proxy,
        seller: seller()?,
        usd_rates: usd_rates(),
        hold_timeout_ms: 600_000,
    };
    open_embedded(options, clock).map_err(setup)
}

/// The day, on the runtime.
async fn day(options: &DayOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<DayReport, SimulationError> {
    let book = load_prices(&options.prices)?;
    let models = pick_models(&book);
    if models.is_empty() {
        return Err(SimulationError::Prices(
            "no chat model with input and output token prices".into(),
        ));
    }
    let embeddings: Vec<String> = models
        .iter()
        .filter(|m| book.model(m).is_ok_and(|s| s.mode == Mode::Embedding))
        .cloned()
        .collect();
    // Midnight always exists, and a day between 1970 and 2262 fits nanoseconds in a u64.
    let start = Utc.from_utc_datetime(&options.day.and_hms_opt(0, 0, 0).unwrap_or_default());
    let start_ns = u64::try_from(start.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    // One clock for the day: the proxy's gateway, rate limiter, ledger and usage log.
    let clock = ManualClock::new(start_ns);
    let data_dir = LedgerDir::new(options.ledger_dir.as_deref(), options.seed)?;
    let upstream = FakeUpstream::start(UpstreamOptions::default())
        .await
        .map_err(|e| setup(format!("the fake upstream: {e}")))?;
    let proxy = open_proxy(book, data_dir.path(), upstream.url(), clock.clone())?;
    let proxy = Arc::new(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| setup(format!("cannot listen on 127.0.0.1: {e}")))?;
    let addr = listener.local_addr().map_err(setup)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(paygo_http::serve(listener, Arc::clone(&proxy), async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| setup(format!("the HTTP client: {e}")))?;
    let mut day = Day {
        options,
        models,
        embeddings,
        clock,
        start,
        start_ns,
        proxy,
        http,
        base: format!("http://{addr}"),
        keys: Vec::with_capacity(options.accounts),
        reports: Vec::with_capacity(options.accounts),
        charges: BTreeMap::new(),
        exact: BTreeMap::new(),
        unrecorded: 0,
        header_mismatches: 0,
        traffic: Traffic::default(),
        sample_usage_section: String::new(),
    };
    let mut rng = Rng(options.seed);
    let outcome = day.run(&mut rng, progress).await;
    // Whatever happened, stop the servers before the stores are closed.
    let Day {
        proxy,
        http,
        mut traffic,
        reports,
        sample_usage_section,
        models,
        ..
    } = day;
    drop(http);
    let _ = stop.send(());
    let finished = server.await;
    traffic.upstream_requests = upstream.calls();
    upstream.shutdown().await;
    let (statements, invoices, mut checks) = outcome?;
    finished
        .map_err(|e| setup(format!("the proxy's task: {e}")))?
        .map_err(|e| setup(format!("the proxy: {e}")))?;
    let completed: u64 = reports.iter().map(|r| r.completed + r.failed_upstream).sum();
    checks.push(Check {
        what: "refused calls never reached the upstream: its requests = calls completed or failed".into(),
        ok: traffic.upstream_requests == completed,
        detail: format!("{} upstream requests, {completed} calls", traffic.upstream_requests),
    });
    // Close every store and open the ledger and the usage log again from the folder: the
    // day must survive a restart.
    let Ok(proxy) = paygo_http::take_back(proxy, std::time::Duration::from_secs(10)).await else {
        return Err(setup("the proxy is still in use 10 s after the server stopped"));
    };
    drop(proxy);
    checks.extend(reopened_checks(data_dir.path(), &reports)?);
    Ok(DayReport {
        accounts: reports,
        invoices,
        statements,
        checks,
        sample_usage_section,
        models,
        traffic,
    })
}

/// The checks of the stores reopened from the data directory once the proxy is closed:
/// the ledger's balances and revenue, and the usage log's records.
fn reopened_checks(dir: &std::path::Path, reports: &[AccountReport]) -> Result<Vec<Check>, SimulationError> {
    let mut checks = Vec::new();
    let (reopened, _) = paygo_ledger::durable::load::<Billing>(dir.join("ledger")).map_err(setup)?;
    let same = reports
        .iter()
        .all(|r| reopened.balance(CustomerId(r.id)).map(Credits::get) == Ok(r.balance));
    let revenue = reopened.ledger().account(REVENUE).map_or(0, |a| a.posted_balance());
    let spent: i128 = reports.iter().map(|r| i128::from(r.credits_spent)).sum();
    checks.push(Check {
        what: "the durable ledger, reopened from its folder, has the same balances and revenue".into(),
        ok: same && revenue == spent,
        detail: format!("{} accounts, revenue {revenue}", reports.len()),
    });
    let log = paygo_http::UsageLog::open(dir).map_err(setup)?;
    let logged = reports.iter().all(|r| {
        // A log in a folder answers without waiting on anything.
        let Ok(records) = paygo_billing::block_on(log.records(CustomerId(r.id))) else {
            return false;
        };
        let credits: i64 = records.iter().map(|c| c.credits.get()).sum();
        records.len() as u64 == r.completed && credits == r.credits_spent
    });
    checks.push(Check {
        what: "the usage log, reopened from its folder, has one record per charged call".into(),
        ok: logged,
        detail: format!("{} accounts", reports.len()),
    });
    drop(log);
    Ok(checks)
}

/// The day under way: the proxy and the client, one clock, and what each account did so
/// far.
struct Day<'a> {
    options: &'a DayOptions,
    models: Vec<String>,
    embeddings: Vec<String>,
    clock: ManualClock,
    start: DateTime<Utc>,
    start_ns: u64,
    proxy: Arc<EmbeddedProxy<ManualClock>>,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Each account's API key.
    keys: Vec<String>,
    reports: Vec<AccountReport>,
    charges: BTreeMap<u128, Vec<Charge>>,
    exact: BTreeMap<u128, ExactCredits>,
    /// Charged calls whose request id the usage log does not know.
    unrecorded: u64,
    /// Answers whose `x-aimlapi-credits-used` header disagrees with their `meta`.
    header_mismatches: u64,
    traffic: Traffic,
    sample_usage_section: String,
}

/// What the end of the day gives: the statements, the invoices and the checks.
type Finished = (Vec<(u128, Statement)>, Vec<paygo_invoice::Document>, Vec<Check>);

/// An answer of the proxy: its status, request id, credits header and body.
struct Answer {
    status: u16,
    request_id: Option<String>,
    credits_header: Option<i64>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn describe(&self) -> String {
        format!("HTTP {}: {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

impl Day<'_> {
    /// The accounts, the calls and the end-of-day figures; statements and checks.
    async fn run(
        &mut self,
        rng: &mut Rng,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Finished, SimulationError> {
        for k in 0..self.options.accounts {
            self.open_account(k, rng).await?;
        }
        let calls = plan_calls(self.options, self.start_ns, rng);
        let total = calls.len();
        for (n, call) in calls.iter().enumerate() {
            if n % 256 == 0 {
                progress(n, total);
            }
            self.call(n, call, rng).await?;
        }
        progress(total, total);
        self.finish(total).await
    }

    /// Sends a request to the proxy and reads its whole answer.
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<Answer, SimulationError> {
        self.traffic.requests += 1;
        let mut response = request
            .send()
            .await
            .map_err(|e| setup(format!("a request to the proxy failed: {e}")))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("x-request-id");
        let credits_header = header("x-aimlapi-credits-used").and_then(|v| v.parse().ok());
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(setup(format!("the proxy's answer was cut: {e}"))),
            }
        }
        Ok(Answer {
            status,
            request_id,
            credits_header,
            body,
        })
    }

    /// An operator request (`Authorization: Bearer` the admin token).
    async fn admin(&mut self, method: reqwest::Method, path: &str, body: &Value) -> Result<Answer, SimulationError> {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(body);
        self.send(request).await
    }

    /// Opens account `k` through `POST /admin/v1/accounts`, tops it up at the start of the
    /// day through `POST .../payments` (invoiced), and gives it its auto top-up rule
    /// through `PUT .../auto-top-up`.
    async fn open_account(&mut self, k: usize, rng: &mut Rng) -> Result<(), SimulationError> {
        let profile = &PROFILES[k % PROFILES.len()];
        let name = if k < PROFILES.len() {
            profile.name.to_owned()
        } else {
            format!("{} ({})", profile.name, k / PROFILES.len() + 1)
        };
        let mut new = json!({"name": name, "country": profile.country, "address": profile.address});
        if let Some(vat_id) = profile.vat_id {
            new["vat_id"] = json!(vat_id);
        }
        let created = self.admin(reqwest::Method::POST, "/admin/v1/accounts", &new).await?;
        if created.status != 201 {
            return Err(setup(format!("account {name} was not created: {}", created.describe())));
        }
        let created = created.json();
        let (Some(id), Some(key)) = (created["account_id"].as_u64(), created["api_key"].as_str()) else {
            return Err(setup(format!("account {name}: no account id or key in {created}")));
        };
        let id = u128::from(id);
        self.keys.push(key.to_owned());
        let mut report = AccountReport {
            id,
            name,
            country: profile.country.into(),
            ..AccountReport::default()
        };
        let payments = format!("/admin/v1/accounts/{id}/payments");
        // Someone always tries a prepaid card first: refused, with the reason.
        if k == 2 {
            let body = json!({"payment_id": format!("prepaid-{id}"), "usd": "10.00", "method": "prepaid_card"});
            let refused = self.admin(reqwest::Method::POST, &payments, &body).await?;
            if refused.status == 402 && refused.json()["error"]["code"] == "payment_method_refused" {
                report.refused_payment_methods += 1;
            } else {
                return Err(setup(format!("a prepaid card was not refused: {}", refused.describe())));
            }
        }
        // Accounts with auto top-up start with $10 or $20; the others with $2 or $5, and
        // run out during the day.
        let cents = if profile.auto_top_up {
            [1000i64, 2000]
        } else {
            [200i64, 500]
        }[rng.below(2) as usize];
        let mut payment = json!({
            "payment_id": format!("topup-{id}"),
            "usd": format!("{}.{:02}", cents / 100, cents % 100),
            "method": method_name(profile.method),
        });
        if profile.vat_id.is_none() {
            // A consumer's country needs a second piece of evidence.
            payment["ip_country"] = json!(profile.country);
            if matches!(profile.method, PaymentMethod::Card(_)) {
                payment["card_country"] = json!(profile.country);
            }
        }
        let paid = self.admin(reqwest::Method::POST, &payments, &payment).await?;
        let credits = paid.json()["credits_added"].as_i64();
        match credits {
            Some(credits) if paid.status == 200 => report.top_up_credits += credits,
            _ => {
                return Err(setup(format!(
                    "the top-up of {} failed: {}",
                    report.name,
                    paid.describe()
                )));
            }
        }
        report.top_ups += 1;
        report.top_up_cents += cents;
        if profile.auto_top_up {
            let rule = auto_top_up_rule(k, profile)?;
            let path = format!("/admin/v1/accounts/{id}/auto-top-up");
            let set = self.admin(reqwest::Method::PUT, &path, &json!({"rule": rule})).await?;
            if set.status != 200 {
                return Err(setup(format!(
                    "the auto top-up rule of {}: {}",
                    report.name,
                    set.describe()
                )));
            }
        }
        self.exact.insert(id, ExactCredits::ZERO);
        self.charges.insert(id, Vec::new());
        self.reports.push(report);
        Ok(())
    }

    /// The `n`th call of the day, over HTTP: refused (429, 403), failed upstream (502),
    /// or charged; then the auto top-up it may have triggered, paid or declined.
    #[allow(clippy::too_many_lines)]
    async fn call(&mut self, n: usize, planned: &Planned, rng: &mut Rng) -> Result<(), SimulationError> {
        self.clock.set_ns(planned.at_ns);
        // A call is within the day: its offset fits an i64 of nanoseconds.
        let at = self.start + Duration::nanoseconds(i64::try_from(planned.at_ns - self.start_ns).unwrap_or(0));
        let k = planned.account;
        let account = self.reports[k].id;
        self.reports[k].calls += 1;
        let model = self.models[rng.below(self.models.len() as u64) as usize].clone();
        let embedding = self.embeddings.contains(&model);
        // Long prompts (2%): 20,000 to 60,000 tokens (80 to 240 kB of text).
        let prompt_tokens = if rng.chance(2) && !embedding {
            20_000 + rng.below(40_000)
        } else {
            200 + rng.below(12_000)
        };
        let stream = !embedding && rng.chance(self.options.stream_percent);
        let include_usage = stream && rng.chance(50);
        // An embedding produces no completion tokens; a streamed answer is a chunk a token,
        // so streams ask for shorter answers.
        let max_output_tokens = match (embedding, stream) {
            (true, _) => 0,
            (false, true) => 16 + rng.below(240),
            (false, false) => 256 + rng.below(4_000),
        };
        let service_tier = if rng.chance(5) {
            ServiceTier::BATCH
        } else {
            ServiceTier::STANDARD
        };
        let fail = rng.chance(self.options.upstream_failure_percent);
        let completion = if embedding { 0 } else { 1 + rng.below(max_output_tokens) };
        let cut = stream && !fail && rng.chance(3);
        let cached = if rng.chance(40) {
            rng.below(prompt_tokens / 2)
        } else {
            0
        };
        let reasoning = if model == "o3" { rng.below(completion) } else { 0 };
        let mut directives: Vec<String> = Vec::new();
        if fail {
            directives.push("[fake:error=500]".into());
        }
        if !embedding {
            directives.push(format!("[fake:tokens={completion}]"));
            if cut {
                directives.push(format!("[fake:cut={}]", 1 + rng.below(completion)));
            }
            if reasoning > 0 {
                directives.push(format!("[fake:reasoning={reasoning}]"));
            }
        }
        if cached > 0 {
            directives.push(format!("[fake:cached={cached}]"));
        }
        let text = prompt_text(prompt_tokens, &directives.concat(), embedding);
        let (path, mut body) = if embedding {
            ("/v1/embeddings", json!({"model": model, "input": text}))
        } else {
            let messages = json!([{"role": "user", "content": text}]);
            (
                "/v1/chat/completions",
                json!({"model": model, "messages": messages, "max_tokens": max_output_tokens}),
            )
        };
        if service_tier == ServiceTier::BATCH {
            body["service_tier"] = json!("batch");
        }
        if stream {
            body["stream"] = json!(true);
            if include_usage {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        self.traffic.calls += 1;
        self.traffic.embeddings += u64::from(embedding);
        self.traffic.streamed += u64::from(stream);
        self.traffic.streamed_with_usage += u64::from(include_usage);
        self.reports[k].streamed += u64::from(stream);
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.keys[k])
            .json(&body);
        let answer = self.send(request).await?;
        let report = &mut self.reports[k];
        match answer.status {
            // A call planned to fail upstream that was charged is a bug: it falls through.
            200 if !fail => {}
            429 => {
                report.refused_rate_limit += 1;
                return Ok(());
            }
            403 if answer.json()["error"]["code"] == "insufficient_credits" => {
                report.refused_balance += 1;
                return Ok(());
            }
            502 if fail => {
                report.failed_upstream += 1;
                return Ok(());
            }
            _ => return Err(setup(format!("call {n} ({model}): {}", answer.describe()))),
        }
        // The usage the client saw: the JSON body's `meta`, or the stream's last chunk's.
        let meta = if stream {
            let text = String::from_utf8_lossy(&answer.body);
            let mut meta = None;
            let mut was_cut = false;
            for line in text.lines() {
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                if data.contains("\"meta\"") {
                    meta = serde_json::from_str::<Value>(data).ok().map(|v| v["meta"].clone());
                }
                was_cut |= data.contains("upstream_stream_cut");
            }
            if was_cut != cut {
                return Err(setup(format!(
                    "call {n}: a stream cut {was_cut}, planned {cut}: {text}"
                )));
            }
            report.cut_streams += u64::from(cut);
            self.traffic.cut_streams += u64::from(cut);
            meta
        } else {
            let raw = std::str::from_utf8(&answer.body).unwrap_or("");
            let json: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
            if self.sample_usage_section.is_empty()
                && let Some(at) = raw.rfind("\"meta\":")
            {
                // The section exactly as sent (its USD amount is a decimal number).
                self.sample_usage_section = format!("{{{}", raw[at..].trim_end());
            }
            Some(json["meta"].clone())
        };
        let Some(credits) = meta.as_ref().and_then(|m| m["usage"]["credits_used"].as_i64()) else {
            return Err(setup(format!(
                "call {n}: no meta.usage.credits_used in {}",
                answer.describe()
            )));
        };
        if !stream && answer.credits_header != Some(credits) {
            self.header_mismatches += 1;
        }
        report.completed += 1;
        report.credits_spent += credits;
        let charged = Credits::new(credits);
        // The exact credits of the charge: the usage log's record of the call, quoted again.
        let record = match answer.request_id.as_deref() {
            Some(id) => self
                .proxy
                .usage()
                .generation(id)
                .await
                .map_err(|e| setup(format!("call {n}: the usage log: {e}")))?,
            None => None,
        };
        match record {
            Some(record) => {
                let quote = self
                    .proxy
                    .gateway()
                    .prices()
                    .quote(&QuoteRequest::new(&record.model, &record.usage, at).with_service_tier(service_tier))
                    .map_err(setup)?;
                let exact = match record.settlement {
                    // Something was produced: at least one credit.
                    Settlement::WithoutUsage => quote.exact_credits.max(ExactCredits::from(Credits::new(1))),
                    _ => quote.exact_credits,
                };
                if let Some(e) = self.exact.get_mut(&account) {
                    *e = e.checked_add(exact).map_err(setup)?;
                }
            }
            None => self.unrecorded += 1,
        }
        let cost = CreditRate::default().to_money_exact(charged).map_err(setup)?;
        self.charges.entry(account).or_default().push(Charge {
            model,
            at,
            credits: charged,
            cost,
        });
        self.auto_top_ups(rng).await
    }

    /// The auto top-up requests waiting for their payment: each declined (reported so) or
    /// paid (recorded and invoiced by the top-up service), as the operator's payment
    /// service does.
    async fn auto_top_ups(&mut self, rng: &mut Rng) -> Result<(), SimulationError> {
        let requests: Vec<TopUpRequest> = self
            .proxy
            .gateway()
            .billing()
            .outstanding_requests()
            .await
            .map_err(setup)?;
        for request in requests {
            let Some(k) = self.reports.iter().position(|r| r.id == request.customer.0) else {
                return Err(setup(format!(
                    "an auto top-up request for an unknown account: {request:?}"
                )));
            };
            let report = &mut self.reports[k];
            report.auto_top_ups_requested += 1;
            if rng.chance(self.options.payment_decline_percent) {
                self.proxy
                    .gateway()
                    .report_payment(request.id, PaymentOutcome::Declined)
                    .await
                    .map_err(setup)?;
                report.auto_top_ups_declined += 1;
                continue;
            }
            let profile = &PROFILES[k % PROFILES.len()];
            let paid = PaidTopUp::for_request(
                &request,
                format!("auto-{}", request.id),
                self.options.day,
                buyer(profile, &report.name)?,
            );
            let invoiced = self
                .proxy
                .topups()
                .record(self.proxy.gateway().billing(), &paid)
                .await
                .map_err(setup)?;
            report.top_ups += 1;
            report.top_up_credits += invoiced.credits.get();
            report.top_up_cents += i64::try_from(request.amount.to_minor().map_err(setup)?).map_err(setup)?;
        }
        Ok(())
    }

    /// A GET of an account endpoint with account `k`'s key, as JSON.
    async fn account_get(&mut self, k: usize, path: &str) -> Result<Value, SimulationError> {
        let request = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.keys[k]);
        let answer = self.send(request).await?;
        if answer.status != 200 {
            return Err(setup(format!("GET {path}: {}", answer.describe())));
        }
        Ok(answer.json())
    }

    /// The credits of `account`'s charges in the billing store's history.
    async fn ledger_charges(&self, account: u128) -> Result<i64, SimulationError> {
        let mut total = 0i64;
        let mut query = HistoryQuery::newest(HISTORY_PAGE_MAX);
        loop {
            let page = self
                .proxy
                .gateway()
                .billing()
                .history(CustomerId(account), query)
                .await
                .map_err(setup)?;
            for entry in &page.entries {
                if matches!(entry.kind, EntryKind::Charge { .. }) {
                    total = total
                        .checked_sub(entry.credits.get())
                        .ok_or_else(|| setup("charges overflow"))?;
                }
            }
            match page.next {
                Some(before) => query.before_ns = Some(before),
                None => return Ok(total),
            }
        }
    }

    /// End of day: balances and usage over HTTP, statements, and the checks.
    async fn finish(&mut self, calls: usize) -> Result<Finished, SimulationError> {
        let mut statements = Vec::new();
        let day = self.options.day;
        let next = day.succ_opt().unwrap_or(day);
        let mut agreed = true;
        let mut seen_total = 0i64;
        for k in 0..self.reports.len() {
            let id = self.reports[k].id;
            let balance = self.account_get(k, "/v1/billing/balance").await?;
            let usage = self
                .account_get(k, &format!("/v1/billing/usage?from={day}&to={next}"))
                .await?;
            let ledger = self.ledger_charges(id).await?;
            let report = &mut self.reports[k];
            report.balance = balance["credits"]
                .as_i64()
                .ok_or_else(|| setup(format!("no credits in the balance {balance}")))?;
            report.exact_credits_quoted = self.exact.get(&id).map(ToString::to_string).unwrap_or_default();
            let logged = usage["total"]["credits"].as_i64();
            let logged_calls = usage["total"]["calls"].as_u64();
            agreed &= logged == Some(report.credits_spent)
                && ledger == report.credits_spent
                && logged_calls == Some(report.completed);
            seen_total += report.credits_spent;
            let request = StatementRequest {
                account: format!("acct_{} ({})", report.id, report.name),
                first_day: day,
                last_day: day,
                currency: Currency::USD,
            };
            let list = self.charges.get(&id).map_or(&[][..], Vec::as_slice);
            statements.push((id, Statement::build(&request, list).map_err(setup)?));
        }
        let invoices = self.proxy.topups().invoicing().documents().map_err(setup)?;
        let mut checks = check_day(
            self.proxy.gateway().billing().ledger(),
            &self.reports,
            &invoices,
            &self.exact,
            calls,
        )?;
        checks.push(Check {
            what: "per account, the usage the clients saw (meta.usage.credits_used) = the ledger's charges = the usage log's records (GET /v1/billing/usage)".into(),
            ok: agreed && self.unrecorded == 0 && self.header_mismatches == 0,
            detail: format!(
                "{seen_total} credits seen; {} charged calls missing from the log, {} credit headers disagreeing with meta",
                self.unrecorded, self.header_mismatches
            ),
        });
        Ok((statements, invoices, checks))
    }
}

/// The day's traffic: calls spread over 24 hours, heavier for some accounts, and one burst
/// of one account at 13:00.
fn plan_calls(options: &DayOptions, start_ns: u64, rng: &mut Rng) -> Vec<Planned> {
    let day_ns: u64 = 86_400_000_000_000;
    let weights: Vec<u64> = (0..options.accounts).map(|k| 1 + (k as u64 * 7) % 5).collect();
    let weight_sum: u64 = weights.iter().sum::<u64>().max(1);
    let mut calls: Vec<Planned> = (0..options.requests)
        .map(|_| {
            let mut pick = rng.below(weight_sum);
            let mut account = 0;
            for (k, w) in weights.iter().enumerate() {
                if pick < *w {
                    account = k;
                    break;
                }
                pick -= w;
            }
            Planned {
                at_ns: start_ns + rng.below(day_ns),
                account,
            }
        })
        .collect();
    if options.accounts > 1 {
        let burst_at = start_ns + 13 * 3_600_000_000_000;
        for i in 0..150u64 {
            calls.push(Planned {
                at_ns: burst_at + i * 10_000_000,
                account: 1,
            });
        }
    }
    calls.sort_by_key(|p| (p.at_ns, p.account));
    calls
}

/// The durable ledger's folder: the one given (new or empty), or a temporary one removed
/// when the day is over.
struct LedgerDir {
    path: std::path::PathBuf,
    temporary: bool,
}

impl LedgerDir {
    fn new(given: Option<&std::path::Path>, seed: u64) -> Result<LedgerDir, SimulationError> {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if let Some(dir) = given {
            let used = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            if used {
                return Err(setup(format!(
                    "the ledger folder {} is not empty: give a new or empty one",
                    dir.display()
                )));
            }
            return Ok(LedgerDir {
                path: dir.to_path_buf(),
                temporary: false,
            });
        }
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("paygo-day-{}-{seed}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Ok(LedgerDir { path, temporary: true })
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for LedgerDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn check_day<K: Clock>(
    ledger: &SharedLedger<Billing, K>,
    reports: &[AccountReport],
    invoices: &[paygo_invoice::Document],
    exact: &BTreeMap<u128, ExactCredits>,
    calls: usize,
) -> Result<Vec<Check>, SimulationError> {
    let mut checks = Vec::new();
    let mut check = |what: &str, ok: bool, detail: String| {
        checks.push(Check {
            what: what.into(),
            ok,
            detail,
        });
    };
    let posted = |id| ledger.read(|b| b.ledger().account(id).map_or(0, |a| a.posted_balance()));
    let sold: i128 = reports.iter().map(|r| i128::from(r.top_up_credits)).sum();
    let spent: i128 = reports.iter().map(|r| i128::from(r.credits_spent)).sum();
    let funding = posted(FUNDING).map_err(setup)?;
    let revenue = posted(REVENUE).map_err(setup)?;
    let breakage = posted(BREAKAGE).map_err(setup)?;
    check(
        "credits sold equal the funding account's debits",
        funding == -sold,
        format!("{sold} sold, funding {funding}"),
    );
    check(
        "credits charged equal usage revenue",
        revenue == spent,
        format!("{spent} charged, revenue {revenue}"),
    );
    check(
        "no bonus credits expired (bonuses are paused)",
        breakage == 0,
        format!("breakage {breakage}"),
    );
    let balances_ok = reports
        .iter()
        .all(|r| i128::from(r.balance) == i128::from(r.top_up_credits) - i128::from(r.credits_spent));
    check(
        "every balance is its top-ups minus its charges, with no hold left open",
        balances_ok,
        format!("{} accounts", reports.len()),
    );
    let total_balance: i128 = reports.iter().map(|r| i128::from(r.balance)).sum();
    check(
        "no credit created or lost: balances + revenue = credits sold",
        total_balance + revenue == sold,
        format!("{total_balance} + {revenue} = {sold}"),
    );
    let half = rust_decimal::Decimal::new(5, 1);
    let carried = reports.iter().all(|r| {
        exact
            .get(&r.id)
            .is_some_and(|e| (rust_decimal::Decimal::from(r.credits_spent) - e.get()).abs() <= half)
    });
    check(
        "charges stay within half a credit of the exact quotes, per account",
        carried,
        "remainder carrier".into(),
    );
    let counted: u64 = reports
        .iter()
        .map(|r| r.completed + r.failed_upstream + r.refused_rate_limit + r.refused_balance)
        .sum();
    let made: u64 = reports.iter().map(|r| r.calls).sum();
    check(
        "every call counted once: completed + failed + refused = sent",
        counted == made && made == calls as u64,
        format!("{counted} counted, {made} sent, {calls} planned"),
    );
    let top_ups: u64 = reports.iter().map(|r| r.top_ups).sum();
    let gapless = invoices
        .iter()
        .enumerate()
        .all(|(i, d)| d.number().to_string() == format!("INV-2026-{:06}", i + 1));
    check(
        "one invoice per paid top-up, numbered without gaps",
        gapless && invoices.len() as u64 == top_ups,
        format!("{} invoices, {top_ups} top-ups", invoices.len()),
    );
    let invariants = ledger.read(|b| b.ledger().check_invariants()).map_err(setup)?;
    check("ledger invariants", invariants.is_ok(), format!("{invariants:?}"));
    Ok(checks)
}
