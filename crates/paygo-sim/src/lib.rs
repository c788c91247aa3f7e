//! A day of traffic through the gateway (`paygo-gateway`), seeded and deterministic: the
//! main job of the `gateway` example, and what its integration test checks. Not published:
//! it makes traffic for the example and the tests, and holds no billing rule.
//!
//! Accounts in several countries top up, call models of a price book all day (some calls
//! fail upstream, one account bursts past its rate limit, accounts without auto top-up run
//! out and are refused), auto top-ups are requested and paid or declined, every paid top-up
//! is invoiced with the VAT of the buyer's country, and each account gets a usage statement.
//! At the end the ledger is checked against what the day reported. All the billing decisions
//! are the crates'; this module only makes traffic.

use std::collections::BTreeMap;
use std::sync::Arc;

// `SplitMix64`: the same seed gives the same day on every machine.
use paygo_testkit::rng::Rng;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use paygo_billing::{
    AutoTopUp, AutoTopUpRule, BREAKAGE, Billing, BillingConfig, CardKind, CustomerId, FUNDING, HoldId, PaymentMethod,
    PaymentOutcome, REVENUE, Refusal, TopUpAmount, TopUpId, TopUpRequest, block_on,
};
use paygo_credits::{CreditRate, Credits, Currency, ExactCredits, FxRate, Money};
use paygo_invoice::{
    Charge, DocumentKind, Invoicing, MemorySequenceStore, Party, RoundingRules, Series, SeriesName, Statement,
    StatementRequest,
};
use paygo_ledger::{Clock, ManualClock, SharedLedger};
use paygo_pricing::litellm::{ImportOptions, import};
use paygo_pricing::{Mode, PriceBook, ServiceTier, Usage};
use paygo_ratelimit::Plan;
use paygo_vat::{Country, CountryCode, LocationEvidence, NoOutsideEuRules, Seller, VatId, VatIdStatus};

use paygo_gateway::{
    Buyer, Call, Gateway, GatewayError, GatewayOptions, InProcessGateway, PaidFor, PaidTopUp, Rejection, TopUpOptions,
    TopUps,
};

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
    /// Where the durable ledger is kept: a folder that does not exist yet or is empty.
    /// `None`: a fresh folder under the system's temporary folder, removed at the end.
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
            ledger_dir: None,
        }
    }
}

/// What happened to one account during the day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AccountReport {
    /// The account id.
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
    /// Calls completed and charged.
    pub completed: u64,
    /// Calls that failed upstream (the hold was released: free).
    pub failed_upstream: u64,
    /// Calls refused by the rate limit (429).
    pub refused_rate_limit: u64,
    /// Calls refused for lack of balance (403).
    pub refused_balance: u64,
    /// Credits charged.
    pub credits_spent: i64,
    /// The exact credits of the quotes, as text (the carrier keeps the two within ½).
    pub exact_credits_quoted: String,
    /// The balance at the end of the day.
    pub balance: i64,
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
    /// A sample response usage section (JSON), as a gateway returns it.
    pub sample_usage_section: String,
    /// The models the traffic used.
    pub models: Vec<String>,
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
        let summary = serde_json::json!({"accounts": self.accounts, "checks": self.checks, "models": self.models});
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

/// Sample exchange rates of the day, USD to each national currency, for the VAT shown in it.
fn fx_rate(currency: Currency, day: NaiveDate) -> Option<FxRate> {
    let rate = match currency {
        Currency::EUR => "0.9230",
        Currency::PLN => "3.9512",
        _ => return None,
    };
    FxRate::new(Currency::USD, currency, rate.parse().ok()?, day).ok()
}

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

/// One planned call.
struct Planned {
    at_ns: u64,
    account: usize,
}

/// Runs the day. `progress` is told how many calls of how many are done.
///
/// # Errors
///
/// [`SimulationError::Prices`] for a price book that cannot be loaded or has no chat
/// model; [`SimulationError::Setup`] if a crate refuses the day's setup.
pub fn run_day(options: &DayOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<DayReport, SimulationError> {
    let mut rng = Rng(options.seed);
    let mut day = Day::start(options)?;
    for k in 0..options.accounts {
        day.open_account(k, &mut rng)?;
    }
    let calls = plan_calls(options, day.start_ns, &mut rng);
    let total = calls.len();
    for (n, call) in calls.iter().enumerate() {
        if n % 256 == 0 {
            progress(n, total);
        }
        day.call(n, call, &mut rng)?;
    }
    progress(total, total);
    day.finish(total)
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

/// The day under way: the gateway and the top-up service on one clock, and what each
/// account did so far.
struct Day<'a> {
    options: &'a DayOptions,
    models: Vec<String>,
    embeddings: Vec<String>,
    clock: ManualClock,
    start: DateTime<Utc>,
    start_ns: u64,
    gateway: InProcessGateway<ManualClock>,
    topups: TopUps<MemorySequenceStore>,
    // Kept until the end: a temporary folder is removed when this is dropped.
    ledger_dir: LedgerDir,
    reports: Vec<AccountReport>,
    invoices: Vec<paygo_invoice::Document>,
    charges: BTreeMap<u128, Vec<Charge>>,
    exact: BTreeMap<u128, ExactCredits>,
    next_id: u128,
    sample_usage_section: String,
}

/// The day's seller, as its invoices show it and for VAT.
fn seller_options() -> Result<TopUpOptions, SimulationError> {
    Ok(TopUpOptions {
        seller: Party {
            name: "paygo Ltd".into(),
            address: vec!["1 Grand Canal Square".into(), "Dublin D02 X576".into()],
            country: "IE".parse().map_err(setup)?,
            vat_id: Some(VatId::parse("IE6433435F").map_err(setup)?),
        },
        seller_vat: Seller {
            country: Country::Ireland,
            oss_registered: true,
        },
        series: SeriesName::new("INV-2026").map_err(setup)?,
        credit_rate: CreditRate::default(),
        rounding: RoundingRules::default(),
        // The simulated VIES confirms every VAT ID of the day.
        confirmer: Arc::new(|_: &VatId| VatIdStatus::Valid),
        outside_eu: Arc::new(NoOutsideEuRules),
        fx: Arc::new(fx_rate),
    })
}

/// What a profile's customer looks like on an invoice and for VAT.
fn buyer(profile: &Profile, name: &str) -> Result<Buyer, SimulationError> {
    let country: CountryCode = profile.country.parse().map_err(setup)?;
    Ok(Buyer {
        name: name.to_owned(),
        address: profile.address.iter().map(|l| (*l).to_owned()).collect(),
        evidence: LocationEvidence {
            billing_country: Some(country),
            ip_country: Some(country),
            card_country: None,
        },
        vat_id: profile.vat_id.map(VatId::parse).transpose().map_err(setup)?,
    })
}

impl<'a> Day<'a> {
    fn start(options: &'a DayOptions) -> Result<Day<'a>, SimulationError> {
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
        // One clock for the day: the gateway's, the rate limiter's and the ledger's.
        let clock = ManualClock::new(start_ns);
        let ledger_dir = LedgerDir::new(options.ledger_dir.as_deref(), options.seed)?;
        let gateway = Gateway::durable(
            GatewayOptions::new(book, clock.clone()),
            &Plan::pay_as_you_go(),
            ledger_dir.path(),
            BillingConfig::default(),
        )
        .map_err(setup)?;
        let invoicing = Invoicing::open(
            MemorySequenceStore::new(),
            vec![Series::new("INV-2026", DocumentKind::Invoice, 6).map_err(setup)?],
        )
        .map_err(setup)?;
        Ok(Day {
            options,
            models,
            embeddings,
            clock,
            start,
            start_ns,
            gateway,
            topups: TopUps::new(invoicing, seller_options()?),
            ledger_dir,
            reports: Vec::with_capacity(options.accounts),
            invoices: Vec::new(),
            charges: BTreeMap::new(),
            exact: BTreeMap::new(),
            next_id: 1,
            sample_usage_section: String::new(),
        })
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    /// Opens account `k`, tops it up at the start of the day (invoiced), and gives it its
    /// auto top-up rule.
    fn open_account(&mut self, k: usize, rng: &mut Rng) -> Result<(), SimulationError> {
        let profile = &PROFILES[k % PROFILES.len()];
        let account = 1000 + k as u128;
        let customer = CustomerId(account);
        let name = if k < PROFILES.len() {
            profile.name.to_owned()
        } else {
            format!("{} ({})", profile.name, k / PROFILES.len() + 1)
        };
        let mut report = AccountReport {
            id: account,
            name,
            country: profile.country.into(),
            ..AccountReport::default()
        };
        block_on(self.gateway.open_account(customer)).map_err(setup)?;
        // Someone always tries a prepaid card first: refused, with the reason.
        if k == 2 {
            let id = TopUpId(self.id());
            let usd10 = Money::from_minor(1000, Currency::USD).map_err(setup)?;
            match block_on(
                self.gateway
                    .top_up(id, customer, usd10, PaymentMethod::Card(CardKind::Prepaid)),
            ) {
                Err(GatewayError::Refused(Refusal::PaymentMethodRefused(_))) => report.refused_payment_methods += 1,
                other => return Err(setup(format!("a prepaid card was not refused: {other:?}"))),
            }
        }
        // Accounts with auto top-up start with $10 or $20; the others with $2 or $5, and
        // run out during the day.
        let cents = if profile.auto_top_up {
            [1000i128, 2000]
        } else {
            [200i128, 500]
        }[rng.below(2) as usize];
        let top_up_id = self.id();
        let paid = PaidTopUp {
            paid_for: PaidFor::TopUp { id: TopUpId(top_up_id) },
            customer,
            amount: Money::from_minor(cents, Currency::USD).map_err(setup)?,
            method: profile.method,
            reference: format!("topup-{top_up_id}"),
            paid_on: self.options.day,
            buyer: buyer(profile, &report.name)?,
            purchase_order: None,
        };
        let invoiced = block_on(self.topups.record(self.gateway.billing(), &paid)).map_err(setup)?;
        report.top_ups += 1;
        report.top_up_credits += invoiced.credits.get();
        report.top_up_cents += i64::try_from(cents).map_err(setup)?;
        self.invoices.push(invoiced.invoice);
        if profile.auto_top_up {
            let rule = AutoTopUpRule {
                enabled: true,
                threshold: Credits::new(15_000_000),
                amount: if k.is_multiple_of(2) {
                    TopUpAmount::Fixed(Money::from_minor(1000, Currency::USD).map_err(setup)?)
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
            };
            block_on(self.gateway.set_auto_top_up(customer, Some(rule))).map_err(setup)?;
        }
        self.exact.insert(account, ExactCredits::ZERO);
        self.charges.insert(account, Vec::new());
        self.reports.push(report);
        Ok(())
    }

    /// The `n`th call of the day: admitted or refused, then failed upstream or completed,
    /// and the auto top-up it may trigger paid or declined.
    fn call(&mut self, n: usize, planned: &Planned, rng: &mut Rng) -> Result<(), SimulationError> {
        self.clock.set_ns(planned.at_ns);
        // A call is within the day: its offset fits an i64 of nanoseconds.
        let at = self.start + Duration::nanoseconds(i64::try_from(planned.at_ns - self.start_ns).unwrap_or(0));
        let account = 1000 + planned.account as u128;
        self.reports[planned.account].calls += 1;
        let model = self.models[rng.below(self.models.len() as u64) as usize].clone();
        let embedding = self.embeddings.contains(&model);
        let long = rng.chance(2);
        let prompt_tokens = if long && !embedding {
            150_000 + rng.below(100_000)
        } else {
            200 + rng.below(12_000)
        };
        // An embedding produces no completion tokens.
        let max_output_tokens = if embedding { 0 } else { 256 + rng.below(4_000) };
        let service_tier = if rng.chance(5) {
            ServiceTier::BATCH
        } else {
            ServiceTier::STANDARD
        };
        let request = Call {
            service_tier,
            ..Call::tokens(
                HoldId(self.id()),
                CustomerId(account),
                &model,
                prompt_tokens,
                max_output_tokens,
            )
        };
        let report = &mut self.reports[planned.account];
        let admitted = match block_on(self.gateway.admit(&request)) {
            Ok(a) => a,
            Err(Rejection::RateLimited { .. }) => {
                report.refused_rate_limit += 1;
                return Ok(());
            }
            Err(Rejection::InsufficientCredits) => {
                report.refused_balance += 1;
                return Ok(());
            }
            Err(other) => return Err(setup(format!("call {n} refused: {other}"))),
        };
        if rng.chance(self.options.upstream_failure_percent) {
            block_on(self.gateway.fail(&admitted)).map_err(setup)?;
            report.failed_upstream += 1;
            return Ok(());
        }
        let usage = simulated_usage(rng, &model, prompt_tokens, max_output_tokens, embedding);
        let done = block_on(self.gateway.complete(&admitted, &usage)).map_err(setup)?;
        report.completed += 1;
        report.credits_spent += done.charged.get();
        if let Some(e) = self.exact.get_mut(&account) {
            *e = e.checked_add(done.quote.exact_credits).map_err(setup)?;
        }
        let cost = CreditRate::default().to_money_exact(done.charged).map_err(setup)?;
        self.charges.entry(account).or_default().push(Charge {
            model: admitted.model,
            at,
            credits: done.charged,
            cost,
        });
        if self.sample_usage_section.is_empty() {
            self.sample_usage_section = serde_json::json!({"meta": {"usage": done.usage}}).to_string();
        }
        if let AutoTopUp::Requested(request) = done.auto_top_up {
            self.auto_top_up(planned.account, &request, rng)?;
        }
        Ok(())
    }

    /// An auto top-up request: its payment is declined (reported so) or paid (recorded and
    /// invoiced by the top-up service).
    fn auto_top_up(&mut self, k: usize, request: &TopUpRequest, rng: &mut Rng) -> Result<(), SimulationError> {
        let report = &mut self.reports[k];
        report.auto_top_ups_requested += 1;
        if rng.chance(self.options.payment_decline_percent) {
            block_on(self.gateway.report_payment(request.id, PaymentOutcome::Declined)).map_err(setup)?;
            report.auto_top_ups_declined += 1;
            return Ok(());
        }
        let profile = &PROFILES[k % PROFILES.len()];
        let paid = PaidTopUp::for_request(
            request,
            format!("auto-{}", request.id),
            self.options.day,
            buyer(profile, &report.name)?,
        );
        let invoiced = block_on(self.topups.record(self.gateway.billing(), &paid)).map_err(setup)?;
        report.top_ups += 1;
        report.top_up_credits += invoiced.credits.get();
        report.top_up_cents += i64::try_from(request.amount.to_minor().map_err(setup)?).map_err(setup)?;
        self.invoices.push(invoiced.invoice);
        Ok(())
    }

    /// End of day: balances, statements, the checks, and the ledger reopened from its
    /// folder.
    fn finish(mut self, calls: usize) -> Result<DayReport, SimulationError> {
        let mut statements = Vec::new();
        for report in &mut self.reports {
            report.balance = block_on(self.gateway.balance(CustomerId(report.id)))
                .map_err(|e| setup(format!("account {}: {e}", report.id)))?
                .available
                .get();
            report.exact_credits_quoted = self.exact.get(&report.id).map(ToString::to_string).unwrap_or_default();
            let request = StatementRequest {
                account: format!("acct_{} ({})", report.id, report.name),
                first_day: self.options.day,
                last_day: self.options.day,
                currency: Currency::USD,
            };
            let list = self.charges.get(&report.id).map_or(&[][..], Vec::as_slice);
            statements.push((report.id, Statement::build(&request, list).map_err(setup)?));
        }
        let mut checks = check_day(
            self.gateway.billing().ledger(),
            &self.reports,
            &self.invoices,
            &self.exact,
            calls,
        )?;
        // Close the ledger and open it again from its folder: the day must survive a restart.
        let Day {
            gateway,
            ledger_dir,
            reports,
            invoices,
            sample_usage_section,
            models,
            ..
        } = self;
        drop(gateway);
        let (reopened, _) = paygo_ledger::durable::load::<Billing>(ledger_dir.path()).map_err(setup)?;
        let same = reports
            .iter()
            .all(|r| reopened.balance(CustomerId(r.id)).map(paygo_credits::Credits::get) == Ok(r.balance));
        let revenue = reopened.ledger().account(REVENUE).map_or(0, |a| a.posted_balance());
        let spent: i128 = reports.iter().map(|r| i128::from(r.credits_spent)).sum();
        checks.push(Check {
            what: "the durable ledger, reopened from its folder, has the same balances and revenue".into(),
            ok: same && revenue == spent,
            detail: format!("{} accounts, revenue {revenue}", reports.len()),
        });
        Ok(DayReport {
            accounts: reports,
            invoices,
            statements,
            checks,
            sample_usage_section,
            models,
        })
    }
}

/// What the upstream reports a call used: some output, some cached input, reasoning for
/// `o3`.
fn simulated_usage(rng: &mut Rng, model: &str, prompt_tokens: u64, max_output_tokens: u64, embedding: bool) -> Usage {
    let completion = if embedding { 0 } else { 1 + rng.below(max_output_tokens) };
    let cached = if rng.chance(40) {
        rng.below(prompt_tokens / 2)
    } else {
        0
    };
    let reasoning = if model == "o3" { rng.below(completion) } else { 0 };
    Usage {
        prompt_tokens,
        completion_tokens: completion,
        total_tokens: Some(prompt_tokens + completion),
        prompt_tokens_details: Some(paygo_pricing::PromptTokensDetails {
            cached_tokens: cached,
            ..Default::default()
        }),
        completion_tokens_details: Some(paygo_pricing::CompletionTokensDetails {
            reasoning_tokens: reasoning,
            ..Default::default()
        }),
        ..Usage::default()
    }
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
