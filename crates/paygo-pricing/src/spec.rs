//! The public, serializable description of a model's prices: what a price-book file holds.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Component, Mode, PricingError, ServiceTier};

/// USD per unit for some components. Components absent from the card have no price here
/// (a lower context tier, the standard service tier or a documented fallback may price
/// them; otherwise their usage is an error).
///
/// Serializes as a map from component name to a decimal string:
/// `{"input_token": "0.0000025", "output_token": "0.00001"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RateCard(BTreeMap<Component, Decimal>);

impl RateCard {
    /// An empty card.
    pub fn new() -> RateCard {
        RateCard(BTreeMap::new())
    }

    /// Sets the USD price per unit of `component`, replacing any earlier one.
    #[must_use]
    pub fn with(mut self, component: Component, usd_per_unit: Decimal) -> RateCard {
        self.0.insert(component, usd_per_unit);
        self
    }

    /// Sets the USD price per unit of `component`, returning the previous one.
    pub fn insert(&mut self, component: Component, usd_per_unit: Decimal) -> Option<Decimal> {
        self.0.insert(component, usd_per_unit)
    }

    /// The USD price per unit of `component`, if the card has one.
    pub fn get(&self, component: Component) -> Option<Decimal> {
        self.0.get(&component).copied()
    }

    /// Every price on the card, in component order.
    pub fn iter(&self) -> impl Iterator<Item = (Component, Decimal)> + '_ {
        self.0.iter().map(|(c, d)| (*c, *d))
    }

    /// Removes the price of `component`, returning it.
    pub fn remove(&mut self, component: Component) -> Option<Decimal> {
        self.0.remove(&component)
    }

    /// Whether the card has no price.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for RateCard {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(c, d)| (c.name(), d.to_string())))
    }
}

impl<'de> Deserialize<'de> for RateCard {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: BTreeMap<Component, DecimalText> = unique_map(deserializer)?;
        Ok(RateCard(raw.into_iter().map(|(c, d)| (c, d.0)).collect()))
    }
}

/// A map in which a key given twice is an error (a JSON object may repeat a key, and the
/// usual map would keep the last value silently: a price of 0 after the real one).
fn unique_map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + std::fmt::Display,
    V: Deserialize<'de>,
{
    struct Unique<K, V>(std::marker::PhantomData<(K, V)>);

    impl<'de, K, V> serde::de::Visitor<'de> for Unique<K, V>
    where
        K: Deserialize<'de> + Ord + std::fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map in which each key appears once")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<K, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "{key} is given twice, expected each key once"
                    )));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(Unique(std::marker::PhantomData))
}

/// [`unique_map`] for an optional field.
pub(crate) fn unique_map_option<'de, D, K, V>(deserializer: D) -> Result<Option<BTreeMap<K, V>>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + std::fmt::Display,
    V: Deserialize<'de>,
{
    unique_map(deserializer).map(Some)
}

/// A decimal written as a string in a file, parsed exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecimalText(pub(crate) Decimal);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        paygo_credits::decimal::parse_scientific(&text)
            .map(DecimalText)
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) mod decimal_string {
    use super::{Decimal, DecimalText, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        DecimalText::deserialize(deserializer).map(|d| d.0)
    }
}

/// Prices that replace the ones below them when the counted tokens pass a threshold.
///
/// When a request passes `above_tokens`, *every* token of it is priced at this tier (not
/// only the tokens beyond the threshold), as the providers bill long-context requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextTier {
    /// The threshold, in tokens (`200000` for "above 200k").
    pub above_tokens: u64,
    /// The components this tier prices differently; the others keep the price below.
    pub prices: RateCard,
}

/// The prices of one service tier (batch, priority, flex) of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTierPrices {
    /// The tier's prices below every context threshold.
    #[serde(default)]
    pub prices: RateCard,
    /// The tier's own context tiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_tiers: Vec<ContextTier>,
}

/// A price for one variant of a component: an image size and quality (`"1024x1024/hd"`),
/// a video resolution (`"1080p"`), a search context size (`"medium"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantPrice {
    /// The component priced.
    pub component: Component,
    /// The variant's key.
    pub variant: String,
    /// USD per unit of that variant.
    #[serde(with = "decimal_string")]
    pub usd_per_unit: Decimal,
}

/// Which tokens count towards a context threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierCount {
    /// All prompt tokens: text, cached, cache writes, audio and image (the default; what
    /// Anthropic, Google and OpenAI compare).
    #[default]
    PromptTokens,
    /// Prompt and completion tokens together.
    AllTokens,
}

/// How the counted tokens are compared with a threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Strictly more than the threshold (`>`, the default: "above 200k tokens").
    #[default]
    Above,
    /// The threshold or more (`>=`, as some providers bill).
    AtLeast,
}

/// The rule that picks a context tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    /// Which tokens are counted.
    #[serde(default)]
    pub counted: TierCount,
    /// How they are compared.
    #[serde(default)]
    pub comparison: Comparison,
}

impl TierRule {
    /// Whether `tokens` passes `threshold`.
    pub fn passes(&self, tokens: u64, threshold: u64) -> bool {
        match self.comparison {
            Comparison::Above => tokens > threshold,
            Comparison::AtLeast => tokens >= threshold,
        }
    }
}

/// A markup on top of the provider's price, shown as its own line of a quote:
/// `subtotal × percent / 100 + fixed_usd`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Markup {
    /// Percentage of the subtotal (`"5"` for 5%).
    #[serde(default, with = "decimal_string")]
    pub percent: Decimal,
    /// A fixed fee per call, in USD.
    #[serde(default, with = "decimal_string")]
    pub fixed_usd: Decimal,
}

impl Markup {
    /// Checks that neither part is negative.
    ///
    /// # Errors
    ///
    /// [`PricingError::InvalidMarkup`] for a negative percentage or fee.
    pub fn validate(&self) -> Result<(), PricingError> {
        if self.percent.is_sign_negative() && !self.percent.is_zero() {
            return Err(PricingError::InvalidMarkup {
                reason: "percent is negative, expected zero or more",
            });
        }
        if self.fixed_usd.is_sign_negative() && !self.fixed_usd.is_zero() {
            return Err(PricingError::InvalidMarkup {
                reason: "fixed_usd is negative, expected zero or more",
            });
        }
        Ok(())
    }
}

/// One version of a model's prices, in force from `valid_from` until the next version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceVersion {
    /// When these prices take effect.
    pub valid_from: DateTime<Utc>,
    /// Standard-tier prices below every context threshold.
    #[serde(default)]
    pub prices: RateCard,
    /// Standard-tier context tiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_tiers: Vec<ContextTier>,
    /// Prices of other service tiers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "unique_map")]
    pub service_tiers: BTreeMap<ServiceTier, ServiceTierPrices>,
    /// Prices by variant (image size and quality, video resolution, search context size).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<VariantPrice>,
    /// Prices in force during recurring hours (off-peak discounts); the first window open at
    /// the call's time applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<PriceWindow>,
}

/// Prices in force during recurring hours of the week, such as an off-peak discount.
///
/// While the window is open, each price it lists *replaces* the price that would otherwise
/// apply, at every service tier and every context tier (the provider bills the flat
/// off-peak rate for the whole request); components it does not list keep their prices,
/// and the fallbacks then apply (a cache read without its own price is billed at the
/// window's input price).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceWindow {
    /// A name for reports and quotes (`"off_peak"`).
    pub name: String,
    /// The time zone `rules` are read in, as a fixed offset from UTC (`"+08:00"`,
    /// `"+00:00"`). Zones with daylight saving time cannot be written as one offset.
    #[serde(with = "utc_offset")]
    pub utc_offset: FixedOffset,
    /// When the window is open: any rule that matches opens it.
    pub rules: Vec<WindowRule>,
    /// The prices that replace the others while it is open.
    pub prices: RateCard,
}

/// Days of the week and hours of those days.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRule {
    /// ISO weekdays, 1 (Monday) to 7 (Sunday), in the window's time zone; empty means
    /// every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<u8>,
    /// Ranges of the day, `"HH:MM-HH:MM"`: the start is in the window, the end is not; a
    /// range whose end is before its start wraps past midnight, and one whose start equals
    /// its end is the whole day.
    pub hours: Vec<HourRange>,
}

/// A range of the day, `"10:00-00:00"`, in whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HourRange {
    /// Minutes after midnight the range starts at (inclusive), below 1440.
    pub start_minute: u16,
    /// Minutes after midnight the range ends at (exclusive), below 1440.
    pub end_minute: u16,
}

impl HourRange {
    /// Whether a time of day, in seconds after midnight, is in the range.
    pub fn contains(&self, second_of_day: u32) -> bool {
        let start = u32::from(self.start_minute) * 60;
        let end = u32::from(self.end_minute) * 60;
        match start.cmp(&end) {
            std::cmp::Ordering::Less => start <= second_of_day && second_of_day < end,
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => second_of_day >= start || second_of_day < end,
        }
    }
}

impl std::str::FromStr for HourRange {
    type Err = PricingError;

    /// `"HH:MM-HH:MM"`, hours 00 to 23 (`24:00` is not accepted: write `00:00`).
    fn from_str(text: &str) -> Result<HourRange, PricingError> {
        let invalid = || PricingError::InvalidBook {
            reason: format!(
                "hours {:?} given, expected \"HH:MM-HH:MM\" with hours 00 to 23",
                text.chars().take(40).collect::<String>()
            ),
        };
        let minute = |part: &str| -> Option<u16> {
            let (h, m) = part.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start, end) = text.split_once('-').ok_or_else(invalid)?;
        Ok(HourRange {
            start_minute: minute(start).ok_or_else(invalid)?,
            end_minute: minute(end).ok_or_else(invalid)?,
        })
    }
}

impl std::fmt::Display for HourRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

impl Serialize for HourRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HourRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl PriceWindow {
    /// Whether the window is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.utc_offset);
        let weekday = local.weekday().number_from_monday() as u8;
        let second = local.num_seconds_from_midnight();
        self.rules.iter().any(|rule| {
            (rule.weekdays.is_empty() || rule.weekdays.contains(&weekday))
                && rule.hours.iter().any(|h| h.contains(second))
        })
    }
}

mod utc_offset {
    use chrono::FixedOffset;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
    pub(crate) fn serialize<S: Serializer>(value: &FixedOffset, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FixedOffset, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse::<FixedOffset>().map_err(|_| {
            serde::de::Error::custom(format!(
                "utc_offset {:?} given, expected an offset such as \"+08:00\"",
                text.chars().take(40).collect::<String>()
            ))
        })
    }
}

impl PriceVersion {
    /// A version with standard prices only.
    pub fn new(valid_from: DateTime<Utc>, prices: RateCard) -> PriceVersion {
        PriceVersion {
            valid_from,
            prices,
            context_tiers: Vec::new(),
            service_tiers: BTreeMap::new(),
            variants: Vec::new(),
            windows: Vec::new(),
        }
    }
}

/// A model of a price book: its id, aliases, provider, mode and price versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The id callers use (`"gpt-4o"`, `"anthropic/claude-sonnet-4-5"`).
    pub id: String,
    /// Other ids that mean this model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The upstream provider.
    pub provider: String,
    /// What kind of model it is.
    pub mode: Mode,
    /// How a context tier is picked.
    #[serde(default)]
    pub tier_rule: TierRule,
    /// A markup for this model, replacing the book's global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markup: Option<Markup>,
    /// The most completion tokens one call of the model can produce, if known: the output
    /// limit a request that sets none is held for (LiteLLM's `max_output_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Price versions, at least one.
    pub versions: Vec<PriceVersion>,
}
