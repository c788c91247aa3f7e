//! Quotes of actual usage, pre-authorization estimates, and the usage section of a response.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use paygo_credits::{CreditRate, Credits, ExactCredits, Money, Rounding, decimal};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::book::{Card, CardAt, CompiledModel, CompiledVersion, FixedCard, PriceBook};
use crate::spec::Markup;
use crate::usage::{Quantities, is_duration, quantity_scale};
use crate::{Component, PricingError, ServiceTier, Usage};

/// What to quote: a model, its usage, the service tier and the time of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteRequest<'a> {
    /// Model id or alias.
    pub model: &'a str,
    /// What the call used.
    pub usage: &'a Usage,
    /// The service tier it ran at.
    pub service_tier: ServiceTier,
    /// When it ran: picks the price version in force.
    pub at: DateTime<Utc>,
}

impl<'a> QuoteRequest<'a> {
    /// A standard-tier request.
    pub fn new(model: &'a str, usage: &'a Usage, at: DateTime<Utc>) -> QuoteRequest<'a> {
        QuoteRequest {
            model,
            usage,
            service_tier: ServiceTier::STANDARD,
            at,
        }
    }

    /// The same request at another service tier.
    #[must_use]
    pub fn with_service_tier(mut self, service_tier: ServiceTier) -> QuoteRequest<'a> {
        self.service_tier = service_tier;
        self
    }
}

/// What a line of a quote charges for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// A priced unit.
    Unit(Component),
    /// The markup on the units' subtotal.
    Markup,
}

impl LineKind {
    /// The name shown in breakdowns (`"input_token"`, `"markup"`).
    pub const fn name(self) -> &'static str {
        match self {
            LineKind::Unit(c) => c.name(),
            LineKind::Markup => "markup",
        }
    }
}

impl fmt::Display for LineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for LineKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One line of a quote: `quantity × unit_usd = usd`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct QuoteLine {
    /// What is charged.
    #[serde(rename = "component")]
    pub kind: LineKind,
    /// How many units (seconds for per-second components, from milliseconds). Written as
    /// a JSON number from its exact text by `serde_json`.
    #[serde(serialize_with = "as_json_number")]
    pub quantity: Decimal,
    /// USD per unit.
    #[serde(serialize_with = "as_string")]
    pub unit_usd: Decimal,
    /// `quantity × unit_usd`, exact.
    #[serde(serialize_with = "as_string")]
    pub usd: Decimal,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
fn as_string<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&value.normalize())
}

/// The price of one call: a line per component used, the exact USD total, and credits.
///
/// # Properties
///
/// - the lines sum exactly to `usd`;
/// - `exact_credits == usd × rate` exactly, and `credits` is `exact_credits` rounded by
///   the book's rounding (default up);
/// - monotone: more of any quantity never gives a lower total, with one exception:
///   generated images reported both as a count and as image tokens are charged once, by
///   the image-token price when the model has one (so adding image tokens to a usage that
///   had only an image count can lower it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// The model's id (an alias resolves to it).
    #[serde(serialize_with = "arc_str")]
    pub model: Arc<str>,
    /// The service tier priced.
    pub service_tier: ServiceTier,
    /// The context threshold passed, if any.
    pub context_tier_above_tokens: Option<u64>,
    /// The time window whose prices applied (`"off_peak"`), if one was open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// The breakdown, in component order, the markup last.
    pub lines: Vec<QuoteLine>,
    /// The exact total in USD.
    #[serde(serialize_with = "as_string")]
    pub usd: Decimal,
    /// The total in exact, fractional credits.
    pub exact_credits: ExactCredits,
    /// The total in whole credits.
    pub credits: Credits,
    #[serde(skip)]
    rate: CreditRate,
}

/// A decimal as a JSON number written from its exact text (`serde_json`), or as a string
/// for other serializers.
fn as_json_number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    // The text of a normalized Decimal is always a valid JSON number; the fallback only
    // keeps this total.
    match serde_json::value::RawValue::from_string(value.normalize().to_string()) {
        Ok(raw) => raw.serialize(serializer),
        Err(_) => serializer.collect_str(&value.normalize()),
    }
}

fn arc_str<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value)
}

impl Quote {
    /// The usage section of the API response for `credits_used` credits (usually this
    /// quote's `credits`, or what a remainder carrier charged for it).
    ///
    /// # Errors
    ///
    /// As [`UsageSection::new`].
    pub fn usage_section(&self, credits_used: Credits) -> Result<UsageSection, PricingError> {
        UsageSection::new(credits_used, self.rate)
    }
}

/// The `"usage"` object of an API response and its two headers:
/// `{"credits_used": 1892, "usd_spent": 0.000946}`, `x-aimlapi-credits-used: 1892`,
/// `x-aimlapi-usd-spent: 0.000946`.
///
/// `usd_spent` is `credits_used` at the credit rate, exact (at the default rate every
/// credit count has an exact decimal value); at a rate where it has none, it is rounded
/// half-even to 12 decimal places. With `serde_json` it is written as a JSON number from its
/// exact decimal text (never through a float); other serializers get a string.
///
/// # Example
///
/// ```
/// use paygo_credits::{CreditRate, Credits};
/// use paygo_pricing::UsageSection;
///
/// let usage = UsageSection::new(Credits::new(1892), CreditRate::default())?;
/// let meta = serde_json::json!({"meta": {"usage": usage}});
/// assert_eq!(meta.to_string(), r#"{"meta":{"usage":{"credits_used":1892,"usd_spent":0.000946}}}"#);
/// assert_eq!(usage.headers()[1], ("x-aimlapi-usd-spent", "0.000946".to_string()));
/// # Ok::<(), paygo_pricing::PricingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsageSection {
    /// Whole credits charged.
    pub credits_used: Credits,
    /// Their value in USD.
    pub usd_spent: Decimal,
}

impl UsageSection {
    /// The section for `credits_used` at `rate`.
    ///
    /// # Errors
    ///
    /// [`PricingError::Credits`] when the value has no exact form and does not fit 12
    /// decimal places either (only at a rate such as 3 credits per unit, beyond about
    /// 7.9·10^16 credits): never a made-up `usd_spent`.
    pub fn new(credits_used: Credits, rate: CreditRate) -> Result<UsageSection, PricingError> {
        let usd_spent = match rate.to_money_exact(credits_used) {
            Ok(exact) => exact,
            Err(_) => rate.to_money_dp(credits_used, 12, Rounding::HalfEven)?,
        }
        .amount();
        Ok(UsageSection {
            credits_used,
            usd_spent,
        })
    }

    /// The response headers, names in lower case.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            ("x-aimlapi-credits-used", self.credits_used.to_string()),
            ("x-aimlapi-usd-spent", self.usd_spent.normalize().to_string()),
        ]
    }
}

impl Serialize for UsageSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("UsageSection", 2)?;
        s.serialize_field("credits_used", &self.credits_used)?;
        // A RawValue is written verbatim by serde_json: a JSON number with exact digits.
        s.serialize_field("usd_spent", &JsonNumber(self.usd_spent))?;
        s.end()
    }
}

struct JsonNumber(Decimal);

impl Serialize for JsonNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        as_json_number(&self.0, serializer)
    }
}

/// What to estimate before a call: the most it can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateRequest<'a> {
    /// Model id or alias.
    pub model: &'a str,
    /// Prompt tokens of the request (all kinds).
    pub prompt_tokens: u64,
    /// The request's `max_tokens` (completion tokens of all kinds).
    pub max_output_tokens: u64,
    /// The most of each non-token unit (images, seconds, ...); its token fields must be 0.
    pub units: Option<&'a Usage>,
    /// The service tier.
    pub service_tier: ServiceTier,
    /// When the call runs.
    pub at: DateTime<Utc>,
}

impl<'a> EstimateRequest<'a> {
    /// A standard-tier estimate for a token-priced call.
    pub fn new(model: &'a str, prompt_tokens: u64, max_output_tokens: u64, at: DateTime<Utc>) -> EstimateRequest<'a> {
        EstimateRequest {
            model,
            prompt_tokens,
            max_output_tokens,
            units: None,
            service_tier: ServiceTier::STANDARD,
            at,
        }
    }
}

/// The most a call can cost: hold this much before running it.
///
/// # Properties
///
/// - for every usage with at most `prompt_tokens` prompt tokens, at most
///   `max_output_tokens` completion tokens (split into kinds in any way) and at most the
///   given non-token units, the quote is at most this estimate, in USD and in credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    /// The model's id.
    #[serde(serialize_with = "arc_str")]
    pub model: Arc<str>,
    /// The most it can cost in USD, markup included.
    #[serde(serialize_with = "as_string")]
    pub usd: Decimal,
    /// In exact credits.
    pub exact_credits: ExactCredits,
    /// In whole credits, rounded up. A charge made through a remainder carrier can be one
    /// credit above its own cost: hold `credits + 1` then.
    pub credits: Credits,
}

impl PriceBook {
    /// Prices a call's usage.
    ///
    /// # Errors
    ///
    /// [`PricingError::UnknownModel`] (with suggestions), [`PricingError::NoPriceAt`],
    /// [`PricingError::InconsistentUsage`] / [`PricingError::InvalidUsage`] for
    /// contradictory counts, [`PricingError::UnpricedUnit`] for usage of a unit the model
    /// has no price for, [`PricingError::UnknownVariant`] for an unpriced image size,
    /// video resolution or search context size, [`PricingError::Credits`] on overflow.
    pub fn quote(&self, request: &QuoteRequest<'_>) -> Result<Quote, PricingError> {
        let model = &self.models[self.position(request.model)?];
        let version = model.version_at(request.at)?;
        let quantities = request.usage.quantities()?;
        let counted = model.counted_tokens(quantities.counted_prompt_tokens, quantities.counted_all_tokens);
        let at = CardAt {
            slot: version.slot(request.service_tier),
            context: version.context_index(model.rule, counted),
            layer: version.layer(request.at),
        };
        let (card, fixed) = version.card(at);
        let (mut lines, subtotal) =
            match fixed.and_then(|f| fixed_lines(model, version, card, f, request.usage, &quantities)) {
                Some(done) => done,
                None => exact_lines(model, version, card, request.usage, &quantities)?,
            };
        let usd = self.apply_markup(model, subtotal, &mut lines)?;
        let exact_credits = self.rate.to_exact_credits(&Money::usd(usd))?;
        let credits = exact_credits.to_credits(self.credit_rounding)?;
        Ok(Quote {
            model: Arc::clone(&model.id),
            service_tier: request.service_tier,
            context_tier_above_tokens: version.reported_above(at),
            window: version.window_name(at.layer).map(str::to_owned),
            lines,
            usd,
            exact_credits,
            credits,
            rate: self.rate,
        })
    }

    /// The most a call can cost, for the hold placed before it runs.
    ///
    /// Every prompt token is priced at the dearest prompt-token price the model has (text,
    /// cache write, audio, image) and every completion token at the dearest completion
    /// price, at the highest context tier the limits can reach; non-token units at their
    /// dearest variant unless one is named.
    ///
    /// # Errors
    ///
    /// As [`PriceBook::quote`], and [`PricingError::InvalidUsage`] when `units` has token
    /// counts.
    pub fn estimate(&self, request: &EstimateRequest<'_>) -> Result<Estimate, PricingError> {
        let model = &self.models[self.position(request.model)?];
        let version = model.version_at(request.at)?;
        let default_units = Usage::default();
        let units = request.units.unwrap_or(&default_units);
        if units.prompt_tokens != 0 || units.completion_tokens != 0 {
            return Err(PricingError::InvalidUsage {
                field: "units.prompt_tokens or units.completion_tokens",
                value: format!("{} and {}", units.prompt_tokens, units.completion_tokens),
                expected: "0: give tokens as prompt_tokens and max_output_tokens",
            });
        }
        let quantities = units.quantities()?;
        let all = request.prompt_tokens.saturating_add(request.max_output_tokens);
        let counted = model.counted_tokens(request.prompt_tokens, all);
        let top = version.context_index(model.rule, counted);
        let slot = version.slot(request.service_tier);
        let mut most = Decimal::ZERO;
        // Every context tier up to the top one and every time window: the call may run
        // into another window than the one open when it starts.
        let cards =
            (0..=version.windows.len()).flat_map(|layer| (0..=top).map(move |context| CardAt { slot, context, layer }));
        for at in cards {
            let (card, _) = version.card(at);
            let mut total = Decimal::ZERO;
            let dearest = |side: fn(Component) -> bool| {
                Component::ALL
                    .into_iter()
                    .filter(|c| side(*c))
                    .filter_map(|c| card[c.index()])
                    .max()
            };
            for (tokens, side, label) in [
                (
                    request.prompt_tokens,
                    Component::is_prompt_token as fn(Component) -> bool,
                    "prompt tokens",
                ),
                (
                    request.max_output_tokens,
                    Component::is_completion_token,
                    "completion tokens",
                ),
            ] {
                if tokens == 0 {
                    continue;
                }
                let price = dearest(side).ok_or_else(|| PricingError::UnpricedUnit {
                    model: model.id.to_string(),
                    component: label,
                    quantity: tokens.to_string(),
                })?;
                total = decimal::checked_add(total, decimal::checked_mul(Decimal::from(tokens), price)?)?;
            }
            for component in Component::ALL {
                if component.is_prompt_token()
                    || component.is_completion_token()
                    || quantities.amounts[component.index()] == 0
                    || (component == Component::Request && card[component.index()].is_none())
                    // Images of a model priced only by image tokens: max_output_tokens bounds them.
                    || (component == Component::OutputImage
                        && card[component.index()].is_none()
                        && !version.variants.iter().any(|(c, _, _)| *c == component)
                        && card[Component::OutputImageToken.index()].is_some())
                {
                    continue;
                }
                let price = dearest_unit_price(model, version, card, component, units, &quantities)?;
                total = decimal::checked_add(total, decimal::checked_mul(quantities.decimal(component), price)?)?;
            }
            most = most.max(total);
        }
        let mut lines = Vec::new();
        let usd = self.apply_markup(model, most, &mut lines)?;
        let exact_credits = self.rate.to_exact_credits(&Money::usd(usd))?;
        let credits = exact_credits.to_credits(Rounding::Up)?;
        Ok(Estimate {
            model: Arc::clone(&model.id),
            usd,
            exact_credits,
            credits,
        })
    }

    fn apply_markup(
        &self,
        model: &CompiledModel,
        subtotal: Decimal,
        lines: &mut Vec<QuoteLine>,
    ) -> Result<Decimal, PricingError> {
        let Some(markup) = model.markup.or(self.markup) else {
            return Ok(subtotal);
        };
        let amount = markup_amount(&markup, subtotal)?;
        if amount.is_zero() {
            return Ok(subtotal);
        }
        lines.push(QuoteLine {
            kind: LineKind::Markup,
            quantity: Decimal::ONE,
            unit_usd: amount,
            usd: amount,
        });
        Ok(decimal::checked_add(subtotal, amount)?)
    }
}

fn markup_amount(markup: &Markup, subtotal: Decimal) -> Result<Decimal, PricingError> {
    let share = decimal::checked_div_pow10(decimal::checked_mul(subtotal, markup.percent)?, 2)?;
    Ok(decimal::checked_add(share, markup.fixed_usd)?)
}

/// The lines through the fixed-scale card: integer arithmetic only. `None` when a
/// component the usage has is unpriced, a variant price is finer than the card's scale, or
/// a product overflows; the exact path then gives the same result or the error.
fn fixed_lines(
    model: &CompiledModel,
    version: &CompiledVersion,
    card: &Card,
    fixed: &FixedCard,
    usage: &Usage,
    quantities: &Quantities,
) -> Option<(Vec<QuoteLine>, Decimal)> {
    let mut lines = Vec::with_capacity(4);
    let mut subtotal: i128 = 0;
    for component in quantities.used() {
        let amount = quantities.amounts[component.index()];
        if not_charged(version, card, component, quantities) {
            continue;
        }
        let (unit_usd, factor) = if version.variants.iter().any(|(c, _, _)| *c == component) {
            // Priced by variant: scale the chosen price to the card's scale on the spot.
            let price = unit_price(model, version, card, component, usage, quantities).ok()?;
            let extra = quantity_scale(component);
            let shift = decimal::pow10_checked(fixed.scale.checked_sub(price.scale() + extra)?)?;
            (price, price.mantissa().checked_mul(shift)?)
        } else {
            (card[component.index()]?, fixed.factors[component.index()]?)
        };
        let usd = i128::from(amount).checked_mul(factor)?;
        subtotal = subtotal.checked_add(usd)?;
        lines.push(QuoteLine {
            kind: LineKind::Unit(component),
            quantity: quantities.decimal(component),
            unit_usd,
            usd: decimal::from_mantissa(usd, fixed.scale).ok()?,
        });
    }
    Some((lines, decimal::from_mantissa(subtotal, fixed.scale).ok()?))
}

/// The lines through exact decimal arithmetic, with every error.
fn exact_lines(
    model: &CompiledModel,
    version: &CompiledVersion,
    card: &Card,
    usage: &Usage,
    quantities: &Quantities,
) -> Result<(Vec<QuoteLine>, Decimal), PricingError> {
    let mut lines = Vec::with_capacity(4);
    let mut subtotal = Decimal::ZERO;
    for component in quantities.used() {
        if not_charged(version, card, component, quantities) {
            continue;
        }
        let quantity = quantities.decimal(component);
        let unit_usd = unit_price(model, version, card, component, usage, quantities)?;
        let usd = decimal::checked_mul(quantity, unit_usd)?;
        subtotal = decimal::checked_add(subtotal, usd)?;
        lines.push(QuoteLine {
            kind: LineKind::Unit(component),
            quantity,
            unit_usd,
            usd,
        });
    }
    Ok((lines, subtotal))
}

/// Whether a used component is not charged: a request on a model without a per-request
/// price (every call is a request, so requests are the one unit whose missing price is not
/// an error), or one of the two measures of the same generated images when the usage has
/// both (see [`images_counted_by_tokens`]).
fn not_charged(version: &CompiledVersion, card: &Card, component: Component, quantities: &Quantities) -> bool {
    match component {
        Component::Request => card[component.index()].is_none(),
        Component::OutputImage | Component::OutputImageToken => {
            let both = quantities.amounts[Component::OutputImage.index()] > 0
                && quantities.amounts[Component::OutputImageToken.index()] > 0;
            both && (component == Component::OutputImage) == images_counted_by_tokens(version, card)
        }
        _ => false,
    }
}

/// Generated images reported both as a count (`output_images`) and as image tokens are two
/// measures of the same output, charged once: by the image-token price when the model has
/// one, else by the per-image price.
fn images_counted_by_tokens(version: &CompiledVersion, card: &Card) -> bool {
    card[Component::OutputImageToken.index()].is_some()
        || (card[Component::OutputImage.index()].is_none()
            && !version.variants.iter().any(|(c, _, _)| *c == Component::OutputImage))
}

/// The variant key a usage names for a component, if it names one (for messages).
fn variant_key(component: Component, usage: &Usage) -> Option<String> {
    match component {
        Component::OutputImage => usage.image_size.as_ref().map(|size| {
            let size = normalize_size(size);
            match &usage.image_quality {
                Some(q) => format!("{size}/{}", q.to_ascii_lowercase()),
                None => size,
            }
        }),
        Component::OutputSecond => usage.video_resolution.as_ref().map(|r| r.to_ascii_lowercase()),
        Component::WebSearch => usage.search_context_size.as_ref().map(|s| s.to_ascii_lowercase()),
        _ => None,
    }
}

/// Whether the usage names a variant of this component.
fn names_variant(component: Component, usage: &Usage) -> bool {
    match component {
        Component::OutputImage => usage.image_size.is_some(),
        Component::OutputSecond => usage.video_resolution.is_some(),
        Component::WebSearch => usage.search_context_size.is_some(),
        _ => false,
    }
}

/// Whether a stored (canonical, lower-case) variant key is the one the usage names; the
/// same test as comparing with [`variant_key`], without building the string.
fn variant_matches(stored: &str, component: Component, usage: &Usage) -> bool {
    match component {
        Component::OutputImage => {
            let Some(size) = &usage.image_size else { return false };
            let (stored_size, stored_quality) = match stored.split_once('/') {
                Some((s, q)) => (s, Some(q)),
                None => (stored, None),
            };
            let Some(stored_wh) = split_size(stored_size) else {
                // A size label ("1k", "0.5k", "512"): the resolution asked for, at any
                // quality unless the variant names one.
                return stored_size.eq_ignore_ascii_case(size)
                    && stored_quality
                        .is_none_or(|q| usage.image_quality.as_ref().is_some_and(|b| q.eq_ignore_ascii_case(b)));
            };
            let same_quality = match (stored_quality, &usage.image_quality) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (None, None) => true,
                _ => false,
            };
            same_quality && split_size(size) == Some(stored_wh)
        }
        Component::OutputSecond => usage
            .video_resolution
            .as_ref()
            .is_some_and(|r| stored.eq_ignore_ascii_case(r)),
        Component::WebSearch => usage
            .search_context_size
            .as_ref()
            .is_some_and(|s| stored.eq_ignore_ascii_case(s)),
        _ => false,
    }
}

/// The pixels of a `"WxH"` size.
fn pixels_of(size: &str) -> Option<u64> {
    let (w, h) = split_size(size)?;
    w.parse::<u64>().ok()?.checked_mul(h.parse::<u64>().ok()?)
}

/// `"1024x1536"`, `"1024X1536"` or `"1024-x-1536"` as `("1024", "1536")`.
fn split_size(size: &str) -> Option<(&str, &str)> {
    size.split_once("-x-").or_else(|| size.split_once(['x', 'X']))
}

/// `"1024-x-1024"` and `"1024X1024"` to `"1024x1024"`.
pub(crate) fn normalize_size(size: &str) -> String {
    size.to_ascii_lowercase().replace("-x-", "x")
}

fn unit_price(
    model: &CompiledModel,
    version: &CompiledVersion,
    card: &Card,
    component: Component,
    usage: &Usage,
    quantities: &Quantities,
) -> Result<Decimal, PricingError> {
    let has_variants = version.variants.iter().any(|(c, _, _)| *c == component);
    if has_variants
        && names_variant(component, usage)
        && let Some((_, _, price)) = version
            .variants
            .iter()
            .find(|(c, k, _)| *c == component && variant_matches(k, component, usage))
    {
        return Ok(*price);
    }
    // A variant not listed, or none named, takes the component's base price if it has one.
    match card[component.index()] {
        Some(price) => Ok(price),
        // An image of a model priced per output pixel: its pixels, from its size.
        None if component == Component::OutputImage
            && !has_variants
            && let Some(per_pixel) = card[Component::OutputPixel.index()]
            && let Some(pixels) = usage.image_size.as_deref().and_then(pixels_of) =>
        {
            Ok(decimal::checked_mul(per_pixel, Decimal::from(pixels))?)
        }
        None if has_variants => Err(unknown_variant(
            model,
            version,
            component,
            &variant_key(component, usage).unwrap_or_default(),
        )),
        None => Err(PricingError::UnpricedUnit {
            model: model.id.to_string(),
            component: component.name(),
            quantity: quantities.decimal(component).to_string() + if is_duration(component) { " s" } else { "" },
        }),
    }
}

fn dearest_unit_price(
    model: &CompiledModel,
    version: &CompiledVersion,
    card: &Card,
    component: Component,
    usage: &Usage,
    quantities: &Quantities,
) -> Result<Decimal, PricingError> {
    if names_variant(component, usage) {
        return unit_price(model, version, card, component, usage, quantities);
    }
    let variants = version
        .variants
        .iter()
        .filter(|(c, _, _)| *c == component)
        .map(|(_, _, p)| *p);
    match variants.chain(card[component.index()]).max() {
        Some(price) => Ok(price),
        None => unit_price(model, version, card, component, usage, quantities),
    }
}

fn unknown_variant(model: &CompiledModel, version: &CompiledVersion, component: Component, key: &str) -> PricingError {
    let known: Vec<&str> = version
        .variants
        .iter()
        .filter(|(c, _, _)| *c == component)
        .map(|(_, k, _)| &**k)
        .collect();
    PricingError::UnknownVariant {
        model: model.id.to_string(),
        component: component.name(),
        variant: key.to_owned(),
        known: known.join(", "),
    }
}
