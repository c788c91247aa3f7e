//! The price book: models by id and alias, compiled for fast quoting.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use paygo_credits::{CreditRate, Rounding};
use rust_decimal::Decimal;

use crate::hash::FxBuild;
use crate::spec::{ContextTier, Markup, ModelSpec, PriceVersion, PriceWindow, RateCard, TierCount, TierRule};
use crate::{Component, PricingError, ServiceTier};

/// The most models one book may hold.
pub const MODELS_MAX: usize = 100_000;
/// The most context thresholds one price version may have.
pub const CONTEXT_TIERS_MAX: usize = 16;

/// A fully resolved price per component for one (service tier, context tier) pair, with
/// the lower tiers, the standard tier and the documented fallbacks already applied.
pub(crate) type Card = [Option<Decimal>; Component::COUNT];

#[derive(Debug, Clone)]
pub(crate) struct CompiledVersion {
    pub(crate) valid_from: DateTime<Utc>,
    /// Ascending, distinct thresholds of every tier of this version.
    pub(crate) thresholds: Vec<u64>,
    /// The service tiers priced besides the standard one: tier `tiers[i]` is slot `i + 1`,
    /// the standard tier (and any tier not listed) slot 0.
    pub(crate) tiers: Vec<ServiceTier>,
    /// Time windows: window `windows[j]` is layer `j + 1`, no window open layer 0.
    pub(crate) windows: Vec<PriceWindow>,
    /// Cards at `((layer × slots) + slot) × width + context`, `width = thresholds + 1`.
    pub(crate) cards: Vec<Card>,
    /// For each (slot, context), the context threshold a quote reports: the highest one
    /// passed among those of the standard tier and of the slot's own service tier (the
    /// others are only in `thresholds` because another service tier has them).
    pub(crate) reported_above: Vec<Option<u64>>,
    /// For each card, its prices as integers at one common scale, where they fit.
    pub(crate) fixed: Vec<Option<FixedCard>>,
    pub(crate) variants: Vec<(Component, Box<str>, Decimal)>,
}

/// Where a quote's card is: the service-tier slot, the context tier and the time window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CardAt {
    pub(crate) slot: usize,
    pub(crate) context: usize,
    pub(crate) layer: usize,
}

impl CompiledVersion {
    fn width(&self) -> usize {
        self.thresholds.len() + 1
    }

    /// The slot of a service tier (0 for the standard tier and for tiers not priced).
    pub(crate) fn slot(&self, tier: ServiceTier) -> usize {
        self.tiers.iter().position(|t| *t == tier).map_or(0, |i| i + 1)
    }

    /// The layer of the first window open at `at` (0 when none is).
    pub(crate) fn layer(&self, at: DateTime<Utc>) -> usize {
        self.windows.iter().position(|w| w.is_open(at)).map_or(0, |j| j + 1)
    }

    /// The name of the window of a layer.
    pub(crate) fn window_name(&self, layer: usize) -> Option<&str> {
        layer
            .checked_sub(1)
            .and_then(|j| self.windows.get(j))
            .map(|w| w.name.as_str())
    }

    pub(crate) fn card(&self, at: CardAt) -> (&Card, Option<&FixedCard>) {
        let i = (at.layer * (self.tiers.len() + 1) + at.slot) * self.width() + at.context;
        // Built with one card for every (layer, slot, context); the three are in range.
        (&self.cards[i], self.fixed[i].as_ref())
    }

    /// The threshold a quote at this slot and context index reports (see
    /// `reported_above`).
    pub(crate) fn reported_above(&self, at: CardAt) -> Option<u64> {
        self.reported_above
            .get(at.slot * self.width() + at.context)
            .copied()
            .flatten()
    }

    /// The context tier (0 = below every threshold) that `tokens` reach.
    pub(crate) fn context_index(&self, rule: TierRule, tokens: u64) -> usize {
        self.thresholds.iter().take_while(|&&t| rule.passes(tokens, t)).count()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledModel {
    pub(crate) id: Arc<str>,
    pub(crate) rule: TierRule,
    pub(crate) markup: Option<Markup>,
    pub(crate) versions: Vec<CompiledVersion>,
}

impl CompiledModel {
    pub(crate) fn version_at(&self, at: DateTime<Utc>) -> Result<&CompiledVersion, PricingError> {
        let in_force = self.versions.partition_point(|v| v.valid_from <= at);
        match in_force.checked_sub(1).and_then(|i| self.versions.get(i)) {
            Some(v) => Ok(v),
            None => Err(PricingError::NoPriceAt {
                model: self.id.to_string(),
                at: at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                first_valid_from: self
                    .versions
                    .first()
                    .map(|v| v.valid_from.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                    .unwrap_or_default(),
            }),
        }
    }

    pub(crate) fn counted_tokens(&self, prompt: u64, all: u64) -> u64 {
        match self.rule.counted {
            TierCount::PromptTokens => prompt,
            TierCount::AllTokens => all,
        }
    }
}

/// Prices of many models, each with versions over time, context tiers and service tiers.
///
/// Built from [`ModelSpec`]s (by hand, from paygo's own file format with
/// [`PriceBook::from_json`], or from LiteLLM's catalog with [`crate::litellm::import`]),
/// validated once, and compiled so that a quote is a hash lookup and a few exact
/// multiplications. Immutable once built; share it between threads (`Send + Sync`).
///
/// # Example
///
/// ```
/// use paygo_pricing::{Component, ModelSpec, Mode, PriceBook, PriceVersion, QuoteRequest, RateCard, TierRule, Usage};
/// use chrono::{TimeZone, Utc};
///
/// let since = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().ok_or("bad date")?;
/// let prices = RateCard::new()
///     .with(Component::InputToken, "0.00000015".parse()?)
///     .with(Component::OutputToken, "0.0000006".parse()?);
/// let book = PriceBook::new(vec![ModelSpec {
///     id: "gpt-4o-mini".into(),
///     aliases: vec!["gpt-4o-mini-2024-07-18".into()],
///     provider: "openai".into(),
///     mode: Mode::Chat,
///     tier_rule: TierRule::default(),
///     markup: None,
///     max_output_tokens: None,
///     versions: vec![PriceVersion::new(since, prices)],
/// }])?;
///
/// let usage = Usage::tokens(1_000, 500);
/// let quote = book.quote(&QuoteRequest::new("gpt-4o-mini-2024-07-18", &usage, since))?;
/// assert_eq!(quote.usd, "0.00045".parse()?);
/// assert_eq!(quote.credits.get(), 900);
/// assert!(book.quote(&QuoteRequest::new("gpt-4o-mni", &usage, since)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PriceBook {
    pub(crate) specs: Vec<ModelSpec>,
    pub(crate) models: Vec<CompiledModel>,
    pub(crate) index: HashMap<Box<str>, u32, FxBuild>,
    pub(crate) markup: Option<Markup>,
    pub(crate) rate: CreditRate,
    pub(crate) credit_rounding: Rounding,
}

impl PriceBook {
    /// Validates and compiles models into a book, with the default credit rate (2,000,000
    /// credits per USD), credits rounded [`Rounding::Up`] and no markup.
    ///
    /// # Errors
    ///
    /// [`PricingError::Duplicate`] when two models share an id or alias;
    /// [`PricingError::InvalidPrice`] for a negative price;
    /// [`PricingError::InvalidBook`] for a model without versions, two versions from the
    /// same instant, thresholds out of order, a duplicate variant, or too many models.
    pub fn new(specs: Vec<ModelSpec>) -> Result<PriceBook, PricingError> {
        if specs.len() > MODELS_MAX {
            return Err(PricingError::InvalidBook {
                reason: format!("{} models given, at most {MODELS_MAX} are allowed", specs.len()),
            });
        }
        let mut index: HashMap<Box<str>, u32, FxBuild> =
            HashMap::with_capacity_and_hasher(specs.len() * 2, FxBuild::default());
        let mut models = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let position = u32::try_from(i).map_err(|_| PricingError::InvalidBook {
                reason: "too many models".to_owned(),
            })?;
            for name in std::iter::once(&spec.id).chain(&spec.aliases) {
                if name.is_empty() {
                    return Err(PricingError::InvalidBook {
                        reason: format!(
                            "model {:?} has an empty id or alias, expected a non-empty name",
                            spec.id
                        ),
                    });
                }
                if let Some(&first) = index.get(name.as_str()) {
                    return Err(PricingError::Duplicate {
                        id: name.clone(),
                        first: specs[first as usize].id.clone(),
                        second: spec.id.clone(),
                    });
                }
                index.insert(name.as_str().into(), position);
            }
            models.push(compile_model(spec)?);
        }
        Ok(PriceBook {
            specs,
            models,
            index,
            markup: None,
            rate: CreditRate::default(),
            credit_rounding: Rounding::Up,
        })
    }

    /// Sets a markup for every model that has none of its own.
    ///
    /// # Errors
    ///
    /// [`PricingError::InvalidMarkup`] for a negative markup.
    pub fn with_markup(mut self, markup: Option<Markup>) -> Result<PriceBook, PricingError> {
        if let Some(m) = &markup {
            m.validate()?;
        }
        self.markup = markup;
        Ok(self)
    }

    /// Sets the rate that turns USD into credits (default: 2,000,000 per USD). The rate
    /// must be in USD, the currency of every price.
    ///
    /// # Errors
    ///
    /// [`PricingError::InvalidBook`] for a rate in another currency.
    pub fn with_credit_rate(mut self, rate: CreditRate) -> Result<PriceBook, PricingError> {
        if rate.currency() != paygo_credits::Currency::USD {
            return Err(PricingError::InvalidBook {
                reason: format!(
                    "credit rate in {}, expected USD, the currency of prices",
                    rate.currency().code()
                ),
            });
        }
        self.rate = rate;
        Ok(self)
    }

    /// Sets how a quote's exact credits become whole credits (default [`Rounding::Up`]:
    /// a quote never charges less than the price). Metering through a
    /// `paygo_credits::RemainderCarrier` uses `Quote::exact_credits` instead.
    #[must_use]
    pub fn with_credit_rounding(mut self, rounding: Rounding) -> PriceBook {
        self.credit_rounding = rounding;
        self
    }

    /// The global markup.
    pub fn markup(&self) -> Option<Markup> {
        self.markup
    }

    /// The rate from USD to credits.
    pub fn credit_rate(&self) -> CreditRate {
        self.rate
    }

    /// How quotes round to whole credits.
    pub fn credit_rounding(&self) -> Rounding {
        self.credit_rounding
    }

    /// How many models the book holds.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether the book holds no model.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The models, as given.
    pub fn models(&self) -> &[ModelSpec] {
        &self.specs
    }

    /// The model with this id or alias.
    ///
    /// # Errors
    ///
    /// [`PricingError::UnknownModel`], with the nearest known ids as suggestions.
    pub fn model(&self, id: &str) -> Result<&ModelSpec, PricingError> {
        self.position(id).map(|i| &self.specs[i])
    }

    pub(crate) fn position(&self, id: &str) -> Result<usize, PricingError> {
        match self.index.get(id) {
            Some(&i) => Ok(i as usize),
            None => Err(PricingError::UnknownModel {
                model: id.chars().take(128).collect(),
                suggestions: self.suggest(id),
            }),
        }
    }

    /// Up to three known ids nearest to `id`: first those that contain it or that it
    /// contains (a provider prefix more or less), then by edit distance.
    fn suggest(&self, id: &str) -> Vec<String> {
        const LIMIT: usize = 3;
        let id: String = id.chars().take(128).collect::<String>().to_lowercase();
        if id.is_empty() {
            return Vec::new();
        }
        let max_distance = (id.chars().count() / 3).max(2);
        let mut scored: Vec<(usize, &str)> = self
            .index
            .keys()
            .filter_map(|known| {
                let lower = known.to_lowercase();
                if lower.ends_with(&format!("/{id}")) || id.ends_with(&format!("/{lower}")) {
                    return Some((0, &**known));
                }
                // A known id that the given one starts with, or that starts with it (a
                // missing or extra suffix), ranks by how much is missing.
                let d = edit_distance(&id, &lower, max_distance).or_else(|| {
                    (lower.starts_with(&id) || id.starts_with(&lower)).then(|| lower.len().abs_diff(id.len()))
                })?;
                Some((d + 1, &**known))
            })
            .collect();
        scored.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.len().cmp(&b.1.len())).then(a.1.cmp(b.1)));
        scored.into_iter().take(LIMIT).map(|(_, s)| s.to_owned()).collect()
    }
}

/// Levenshtein distance, or `None` once it must exceed `max`.
fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        let mut row_min = current[0];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current[j + 1] = (previous[j] + cost).min(previous[j + 1] + 1).min(current[j] + 1);
            row_min = row_min.min(current[j + 1]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let d = previous[b.len()];
    (d <= max).then_some(d)
}

fn invalid_book(spec: &ModelSpec, what: &str) -> PricingError {
    PricingError::InvalidBook {
        reason: format!("model {:?}: {what}", spec.id),
    }
}

/// Refuses a negative price (a zero one is a free unit); `key` names where it is.
fn check_price(spec: &ModelSpec, key: impl FnOnce() -> String, price: Decimal) -> Result<(), PricingError> {
    if price.is_sign_negative() && !price.is_zero() {
        return Err(PricingError::InvalidPrice {
            model: spec.id.clone(),
            key: key(),
            reason: format!("{price} is negative, expected a price of zero or more"),
        });
    }
    Ok(())
}

fn check_card(spec: &ModelSpec, place: &str, card: &RateCard) -> Result<(), PricingError> {
    for (component, price) in card.iter() {
        check_price(spec, || format!("{place}.{component}"), price)?;
    }
    Ok(())
}

fn check_tiers(spec: &ModelSpec, place: &str, tiers: &[ContextTier]) -> Result<(), PricingError> {
    if tiers.len() > CONTEXT_TIERS_MAX {
        return Err(invalid_book(
            spec,
            &format!("{place} has {} context tiers, at most {CONTEXT_TIERS_MAX}", tiers.len()),
        ));
    }
    for (i, tier) in tiers.iter().enumerate() {
        check_card(spec, &format!("{place}[{i}].prices"), &tier.prices)?;
        if i > 0 && tier.above_tokens <= tiers[i - 1].above_tokens {
            return Err(invalid_book(
                spec,
                &format!(
                    "{place} thresholds must increase, {} follows {}",
                    tier.above_tokens,
                    tiers[i - 1].above_tokens
                ),
            ));
        }
    }
    Ok(())
}

fn compile_model(spec: &ModelSpec) -> Result<CompiledModel, PricingError> {
    if let Some(m) = &spec.markup {
        m.validate()?;
    }
    if spec.versions.is_empty() {
        return Err(invalid_book(spec, "no price versions, expected at least one"));
    }
    let mut versions: Vec<&PriceVersion> = spec.versions.iter().collect();
    versions.sort_by_key(|v| v.valid_from);
    for pair in versions.windows(2) {
        if pair[0].valid_from == pair[1].valid_from {
            return Err(invalid_book(
                spec,
                &format!("two price versions start at {}", pair[0].valid_from),
            ));
        }
    }
    let compiled = versions
        .into_iter()
        .map(|v| compile_version(spec, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledModel {
        id: spec.id.as_str().into(),
        rule: spec.tier_rule,
        markup: spec.markup,
        versions: compiled,
    })
}

fn compile_version(spec: &ModelSpec, version: &PriceVersion) -> Result<CompiledVersion, PricingError> {
    let place = format!(
        "versions[{}]",
        version.valid_from.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    );
    check_card(spec, &format!("{place}.prices"), &version.prices)?;
    check_tiers(spec, &format!("{place}.context_tiers"), &version.context_tiers)?;
    for (tier, prices) in &version.service_tiers {
        check_card(spec, &format!("{place}.service_tiers.{tier}.prices"), &prices.prices)?;
        check_tiers(
            spec,
            &format!("{place}.service_tiers.{tier}.context_tiers"),
            &prices.context_tiers,
        )?;
    }
    let mut variants: Vec<(Component, Box<str>, Decimal)> = Vec::with_capacity(version.variants.len());
    for v in &version.variants {
        check_price(
            spec,
            || format!("{place}.variants.{}.{}", v.component, v.variant),
            v.usd_per_unit,
        )?;
        if variants.iter().any(|(c, k, _)| *c == v.component && **k == *v.variant) {
            return Err(invalid_book(
                spec,
                &format!("variant {}/{} is given twice", v.component, v.variant),
            ));
        }
        variants.push((v.component, v.variant.as_str().into(), v.usd_per_unit));
    }
    check_windows(spec, &place, version)?;
    let mut thresholds: Vec<u64> = version
        .context_tiers
        .iter()
        .chain(version.service_tiers.values().flat_map(|t| &t.context_tiers))
        .map(|t| t.above_tokens)
        .collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    let width = thresholds.len() + 1;

    // Layer 0 (no window), slot 0 (standard), then one slot per other tier priced; each
    // card before fallbacks, so that a window's prices are in place before they apply.
    let standard: Vec<Card> = (0..width)
        .map(|t| layered(&version.prices, &version.context_tiers, &thresholds, t, None))
        .collect();
    let mut raw: Vec<Card> = standard.clone();
    // The highest of `own` thresholds passed at context index `t`.
    let reported = |own: &[u64], t: usize| -> Option<u64> {
        let reached = t.checked_sub(1).and_then(|i| thresholds.get(i)).copied()?;
        own.iter().copied().filter(|&x| x <= reached).max()
    };
    let standard_own: Vec<u64> = version.context_tiers.iter().map(|t| t.above_tokens).collect();
    let mut reported_above: Vec<Option<u64>> = (0..width).map(|t| reported(&standard_own, t)).collect();
    let mut tiers = Vec::with_capacity(version.service_tiers.len());
    for (tier, prices) in &version.service_tiers {
        if tier.is_standard() {
            return Err(invalid_book(
                spec,
                "service_tiers must not list standard: its prices are the version's own",
            ));
        }
        tiers.push(*tier);
        let own: Vec<u64> = standard_own
            .iter()
            .copied()
            .chain(prices.context_tiers.iter().map(|t| t.above_tokens))
            .collect();
        reported_above.extend((0..width).map(|t| reported(&own, t)));
        for t in 0..width {
            raw.push(tier_card(version, prices, &thresholds, t, &standard[0]));
        }
    }
    let mut cards: Vec<Card> = Vec::with_capacity(raw.len() * (1 + version.windows.len()));
    cards.extend(raw.iter().map(with_fallbacks));
    for window in &version.windows {
        for card in &raw {
            let mut open = *card;
            for (c, price) in window.prices.iter() {
                open[c.index()] = Some(price);
            }
            cards.push(with_fallbacks(&open));
        }
    }
    let fixed = cards.iter().map(|card| fixed(card, &variants)).collect();
    Ok(CompiledVersion {
        valid_from: version.valid_from,
        thresholds,
        tiers,
        windows: version.windows.clone(),
        cards,
        reported_above,
        fixed,
        variants,
    })
}

/// The most windows a version may have, and rules a window.
pub const WINDOWS_MAX: usize = 8;

fn check_windows(spec: &ModelSpec, place: &str, version: &PriceVersion) -> Result<(), PricingError> {
    if version.windows.len() > WINDOWS_MAX {
        return Err(invalid_book(
            spec,
            &format!("{place} has {} windows, at most {WINDOWS_MAX}", version.windows.len()),
        ));
    }
    for (j, window) in version.windows.iter().enumerate() {
        let here = format!("{place}.windows[{j}]");
        check_card(spec, &format!("{here}.prices"), &window.prices)?;
        if window.rules.is_empty() || window.rules.len() > 16 {
            return Err(invalid_book(
                spec,
                &format!("{here} has {} rules, expected 1 to 16", window.rules.len()),
            ));
        }
        for rule in &window.rules {
            if rule.hours.is_empty() {
                return Err(invalid_book(spec, &format!("{here} has a rule without hours")));
            }
            if let Some(day) = rule.weekdays.iter().find(|d| !(1..=7).contains(*d)) {
                return Err(invalid_book(
                    spec,
                    &format!("{here} has weekday {day}, expected 1 (Monday) to 7 (Sunday)"),
                ));
            }
        }
    }
    Ok(())
}

/// A service tier's card at context index `t`, before fallbacks: the standard base prices,
/// then the tier's own base prices; then, threshold by threshold up to `t`, the standard
/// tier's long-context prices (never below what the tier charged before: a tier without its
/// own long-context price pays the standard long-context price, or its own if dearer) and
/// the tier's own long-context prices (which win at their threshold).
fn tier_card(
    version: &PriceVersion,
    tier: &crate::spec::ServiceTierPrices,
    thresholds: &[u64],
    t: usize,
    standard_base: &Card,
) -> Card {
    let mut card = *standard_base;
    for (c, price) in tier.prices.iter() {
        card[c.index()] = Some(price);
    }
    let reached = if t == 0 { None } else { thresholds.get(t - 1).copied() };
    for &threshold in thresholds.iter().take_while(|&&r| reached.is_some_and(|top| r <= top)) {
        for ctx in version.context_tiers.iter().filter(|x| x.above_tokens == threshold) {
            for (c, price) in ctx.prices.iter() {
                let slot = &mut card[c.index()];
                *slot = Some(slot.map_or(price, |before| before.max(price)));
            }
        }
        for ctx in tier.context_tiers.iter().filter(|x| x.above_tokens == threshold) {
            for (c, price) in ctx.prices.iter() {
                card[c.index()] = Some(price);
            }
        }
    }
    card
}

/// The card at context index `t`: the highest tier at or below `t` that prices a component
/// wins, then the base card, then `beneath` (the standard tier at the same index).
fn layered(base: &RateCard, tiers: &[ContextTier], thresholds: &[u64], t: usize, beneath: Option<&Card>) -> Card {
    let mut card: Card = beneath.copied().unwrap_or([None; Component::COUNT]);
    let mut own: Card = [None; Component::COUNT];
    for (c, price) in base.iter() {
        own[c.index()] = Some(price);
    }
    // Tiers whose threshold is among the first `t` thresholds apply, in ascending order.
    let reached = if t == 0 { None } else { thresholds.get(t - 1).copied() };
    for tier in tiers {
        if reached.is_some_and(|r| tier.above_tokens <= r) {
            for (c, price) in tier.prices.iter() {
                own[c.index()] = Some(price);
            }
        }
    }
    for (slot, price) in card.iter_mut().zip(own) {
        if price.is_some() {
            *slot = price;
        }
    }
    card
}

/// A card's prices as integer mantissas at one common scale, so that a quote is integer
/// multiplications and additions: `usd = Σ amount × factor / 10^scale` exactly (amounts
/// of per-second components are milliseconds, which the factor accounts for).
#[derive(Debug, Clone)]
pub(crate) struct FixedCard {
    pub(crate) scale: u32,
    pub(crate) factors: [Option<i128>; Component::COUNT],
}

/// The fixed-scale form of a card, if every price (variants included) fits 96 bits at a
/// scale of at most 28.
fn fixed(card: &Card, variants: &[(Component, Box<str>, Decimal)]) -> Option<FixedCard> {
    let extra = crate::usage::quantity_scale;
    let scale = Component::ALL
        .into_iter()
        .filter_map(|c| card[c.index()].map(|p| p.scale() + extra(c)))
        .chain(variants.iter().map(|(c, _, p)| p.scale() + extra(*c)))
        .max()
        .unwrap_or(0);
    if scale > paygo_credits::decimal::MAX_SCALE {
        return None;
    }
    let mut factors = [None; Component::COUNT];
    for c in Component::ALL {
        if let Some(price) = card[c.index()] {
            let shift = 10i128.checked_pow(scale - price.scale() - extra(c))?;
            factors[c.index()] = Some(price.mantissa().checked_mul(shift)?);
        }
    }
    Some(FixedCard { scale, factors })
}

/// Applies [`Component::fallback`] to components without a price.
fn with_fallbacks(card: &Card) -> Card {
    let mut resolved = *card;
    for component in Component::ALL {
        let mut source = component;
        while resolved[component.index()].is_none() {
            match source.fallback() {
                Some(next) => {
                    resolved[component.index()] = card[next.index()];
                    source = next;
                }
                None => break,
            }
        }
    }
    resolved
}
