//! Tax determination for electronically supplied services: where the supply is taxed, at
//! what rate, and what the invoice must say.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{Country, CountryCode, VatError, VatId, VatRate, standard_rate};

/// The mention an invoice must carry when the customer accounts for the VAT.
pub const REVERSE_CHARGE_MENTION: &str = "Reverse charge";

/// What the tax administration (VIES for the EU) said about a VAT ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VatIdStatus {
    /// The number is registered and active.
    Valid,
    /// The number is not registered (or no longer active).
    Invalid,
    /// No answer (the service is down, timed out, or the member state's database is
    /// unavailable): ask again later.
    Unknown,
}

/// Confirms a VAT ID with the tax administration. The core does no network I/O: a service
/// implements this over VIES (with its own timeout and cache) and passes it in.
///
/// Closures implement it, which keeps tests short:
///
/// ```
/// use paygo_vat::{VatId, VatIdConfirmer, VatIdStatus};
///
/// let vies_down = |_: &VatId| VatIdStatus::Unknown;
/// assert_eq!(vies_down.confirm(&VatId::parse("DE136695976")?), VatIdStatus::Unknown);
/// # Ok::<(), paygo_vat::VatError>(())
/// ```
pub trait VatIdConfirmer {
    /// The status of a well-formed VAT ID.
    fn confirm(&self, id: &VatId) -> VatIdStatus;
}

impl<F: Fn(&VatId) -> VatIdStatus> VatIdConfirmer for F {
    fn confirm(&self, id: &VatId) -> VatIdStatus {
        self(id)
    }
}

/// A kind of location evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// The billing address.
    BillingAddress,
    /// The IP address's geolocation.
    IpAddress,
    /// The country of the bank that issued the payment card.
    CardIssuer,
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvidenceKind::BillingAddress => "the billing address",
            EvidenceKind::IpAddress => "the IP address",
            EvidenceKind::CardIssuer => "the card issuer",
        })
    }
}

/// The pieces of evidence of where a customer is, each an ISO 3166 code (`GR` for Greece).
///
/// Two VAT prefixes that are not ISO codes are read as the country they stand for, so that
/// they are never mistaken for a country outside the EU: `EL` as `GR` (Greece), and `XI` as
/// `GB` (Northern Ireland is part of the UK for services, electronically supplied ones
/// included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocationEvidence {
    /// The country of the billing address.
    pub billing_country: Option<CountryCode>,
    /// The country of the IP address.
    pub ip_country: Option<CountryCode>,
    /// The country of the card's issuing bank.
    pub card_country: Option<CountryCode>,
}

impl LocationEvidence {
    /// The pieces given, in a fixed order (billing, IP, card).
    fn pieces(&self) -> impl Iterator<Item = (EvidenceKind, CountryCode)> {
        [
            (EvidenceKind::BillingAddress, self.billing_country),
            (EvidenceKind::IpAddress, self.ip_country),
            (EvidenceKind::CardIssuer, self.card_country),
        ]
        .into_iter()
        .filter_map(|(kind, code)| code.map(|c| (kind, canonical(c))))
    }

    /// The country two pieces agree on (`EL` read as `GR`, `XI` as `GB`), and the piece that
    /// disagrees (if any).
    ///
    /// # Errors
    ///
    /// [`VatError::InsufficientEvidence`] for fewer than two pieces,
    /// [`VatError::EvidenceConflict`] when no two agree.
    pub fn resolve(&self) -> Result<(CountryCode, Option<EvidenceKind>), VatError> {
        let pieces: Vec<(EvidenceKind, CountryCode)> = self.pieces().collect();
        if pieces.len() < 2 {
            return Err(VatError::InsufficientEvidence { given: pieces.len() });
        }
        for &(_, country) in &pieces {
            if pieces.iter().filter(|(_, c)| *c == country).count() >= 2 {
                let dissent = pieces.iter().find(|(_, c)| *c != country).map(|(k, _)| *k);
                return Ok((country, dissent));
            }
        }
        Err(VatError::EvidenceConflict {
            first: pieces[0].0,
            first_country: pieces[0].1,
            second: pieces[1].0,
            second_country: pieces[1].1,
        })
    }
}

/// The ISO code of a piece of evidence: `EL` is Greece (`GR`), `XI` is the UK (`GB`).
fn canonical(code: CountryCode) -> CountryCode {
    match &code.as_bytes() {
        b"EL" => Country::Greece.iso(),
        b"XI" => Country::UnitedKingdom.iso(),
        _ => code,
    }
}

/// The seller: where it is established and whether it uses the One-Stop Shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Seller {
    /// The EU member state of establishment.
    pub country: Country,
    /// Whether the seller is registered for the Union OSS scheme.
    pub oss_registered: bool,
}

/// The customer: location evidence and, for a business, a VAT ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Customer {
    /// Where the customer is.
    pub evidence: LocationEvidence,
    /// The VAT ID the customer gave, if any (already validated in form).
    pub vat_id: Option<VatId>,
}

/// One supply to determine: who sells, who buys, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Supply {
    /// The seller.
    pub seller: Seller,
    /// The customer.
    pub customer: Customer,
    /// The date of the supply (the rate in force that day applies).
    pub date: NaiveDate,
}

/// How the supply is taxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// A consumer in the EU (or a business whose VAT ID is not confirmed): VAT of the
    /// customer's country.
    Consumer,
    /// A business with a confirmed VAT ID of another member state: 0 %, the customer
    /// accounts for the VAT; the invoice says "Reverse charge".
    ReverseCharge,
    /// A business with a confirmed VAT ID of the seller's own member state: VAT charged as
    /// for any domestic sale.
    DomesticBusiness,
    /// A customer outside the EU, for which the [`OutsideEuRules`] hook gave no tax: out of
    /// the scope of EU VAT.
    OutsideEu,
    /// A customer outside the EU taxed by the hook's rules (GB, CH, NO, ...).
    OtherJurisdiction,
}

/// How the seller reports the VAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reporting {
    /// In the seller's own VAT return.
    Domestic,
    /// In the Union One-Stop Shop return.
    Oss,
    /// The seller is not in the OSS: it must register for VAT in the customer's country.
    RegisterInCustomerCountry,
    /// The customer accounts for the VAT (reverse charge).
    ByCustomer,
    /// Not EU VAT: nothing, or what the [`OutsideEuRules`] hook's jurisdiction requires.
    NotEuVat,
}

/// The outcome of tax determination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Determination {
    /// How the supply is taxed.
    pub treatment: Treatment,
    /// Where the supply is taxed (an ISO 3166 code; `GR` for Greece).
    pub place_of_supply: CountryCode,
    /// The rate to charge.
    pub rate: VatRate,
    /// What the invoice must say about the VAT ("Reverse charge"), if anything.
    pub mention: Option<String>,
    /// How the seller reports the VAT.
    pub reporting: Reporting,
    /// The VAT ID given, and what its confirmation said.
    pub vat_id: Option<(VatId, VatIdStatus)>,
    /// A piece of location evidence that disagreed with the two that agreed.
    pub dissenting_evidence: Option<EvidenceKind>,
}

/// Tax outside the EU, as a hook's rules determine it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForeignTax {
    /// The rate to charge.
    pub rate: VatRate,
    /// What the invoice must say, if anything.
    pub mention: Option<String>,
}

/// The hook for customers outside the EU: the UK (including Northern Ireland for services),
/// Switzerland, Norway, or anywhere else. The default, [`NoOutsideEuRules`], treats every
/// such supply as out of scope.
pub trait OutsideEuRules {
    /// The tax on a supply to a customer in `country` (ISO 3166), with the VAT ID the
    /// customer gave and its status, or `None` when the supply is not taxed.
    ///
    /// # Errors
    ///
    /// Whatever the rules need to report (a rate lookup that failed).
    fn tax(
        &self,
        country: CountryCode,
        vat_id: Option<(VatId, VatIdStatus)>,
        date: NaiveDate,
    ) -> Result<Option<ForeignTax>, VatError>;
}

/// The default hook: no tax outside the EU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NoOutsideEuRules;

impl OutsideEuRules for NoOutsideEuRules {
    fn tax(
        &self,
        _: CountryCode,
        _: Option<(VatId, VatIdStatus)>,
        _: NaiveDate,
    ) -> Result<Option<ForeignTax>, VatError> {
        Ok(None)
    }
}

/// Determines how a supply of electronically supplied services is taxed.
///
/// 1. A VAT ID confirmed valid makes the customer a business: another member state's ID
///    gives reverse charge at 0 % with the mention "Reverse charge"; the seller's own
///    state's ID gives domestic VAT; a non-EU ID (XI, GB, CH, NO) goes to the hook. An `XI`
///    (Northern Ireland) ID goes to the hook as `GB`: Northern Ireland is in the EU VAT area
///    for goods only, so a supply of electronic services to it is a supply to the UK, never
///    an EU reverse charge.
/// 2. Otherwise (no VAT ID, or one that is invalid or could not be confirmed) the customer
///    is treated as a consumer, located where two pieces of evidence agree: an EU member
///    state's standard rate, reported domestically or through the OSS; elsewhere, the hook.
///
/// # Errors
///
/// [`VatError::SellerOutsideEu`]; for a consumer, [`VatError::InsufficientEvidence`] and
/// [`VatError::EvidenceConflict`]; the rate errors of [`crate::rates_on`]; the hook's errors.
///
/// # Example
///
/// ```
/// use chrono::NaiveDate;
/// use paygo_vat::*;
///
/// let de: CountryCode = "DE".parse()?;
/// let supply = Supply {
///     seller: Seller { country: Country::Ireland, oss_registered: true },
///     customer: Customer {
///         evidence: LocationEvidence { billing_country: Some(de), ip_country: Some(de), card_country: None },
///         vat_id: Some(VatId::parse("DE136695976")?),
///     },
///     date: "2026-03-01".parse::<NaiveDate>()?,
/// };
/// let vies = |_: &VatId| VatIdStatus::Valid;
/// let outcome = determine(&supply, &vies, &NoOutsideEuRules)?;
/// assert_eq!(outcome.treatment, Treatment::ReverseCharge);
/// assert_eq!(outcome.mention.as_deref(), Some("Reverse charge"));
///
/// // VIES is down: charge German VAT now; the customer can ask for it back later.
/// let vies_down = |_: &VatId| VatIdStatus::Unknown;
/// let outcome = determine(&supply, &vies_down, &NoOutsideEuRules)?;
/// assert_eq!((outcome.treatment, outcome.rate.to_string()), (Treatment::Consumer, "19%".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn determine(
    supply: &Supply,
    confirmer: &dyn VatIdConfirmer,
    outside: &dyn OutsideEuRules,
) -> Result<Determination, VatError> {
    let seller = supply.seller;
    if !seller.country.is_eu() {
        return Err(VatError::SellerOutsideEu {
            country: seller.country,
        });
    }
    let date = supply.date;
    let vat_id = supply.customer.vat_id.map(|id| (id, confirmer.confirm(&id)));
    if let Some((id, VatIdStatus::Valid)) = vat_id {
        let country = id.country();
        if !country.is_eu() {
            return outside_eu(country.iso(), vat_id, date, outside, None);
        }
        let (treatment, rate, mention, reporting) = if country == seller.country {
            (
                Treatment::DomesticBusiness,
                standard_rate(country, date)?,
                None,
                Reporting::Domestic,
            )
        } else {
            (
                Treatment::ReverseCharge,
                VatRate::ZERO,
                Some(REVERSE_CHARGE_MENTION.to_owned()),
                Reporting::ByCustomer,
            )
        };
        return Ok(Determination {
            treatment,
            place_of_supply: country.iso(),
            rate,
            mention,
            reporting,
            vat_id,
            dissenting_evidence: None,
        });
    }
    let (place, dissent) = supply.customer.evidence.resolve()?;
    match Country::from_iso(place).filter(|c| c.is_eu()) {
        Some(country) => Ok(Determination {
            treatment: Treatment::Consumer,
            place_of_supply: place,
            rate: standard_rate(country, date)?,
            mention: None,
            reporting: if country == seller.country {
                Reporting::Domestic
            } else if seller.oss_registered {
                Reporting::Oss
            } else {
                Reporting::RegisterInCustomerCountry
            },
            vat_id,
            dissenting_evidence: dissent,
        }),
        None => outside_eu(place, vat_id, date, outside, dissent),
    }
}

fn outside_eu(
    place: CountryCode,
    vat_id: Option<(VatId, VatIdStatus)>,
    date: NaiveDate,
    outside: &dyn OutsideEuRules,
    dissent: Option<EvidenceKind>,
) -> Result<Determination, VatError> {
    let (treatment, rate, mention) = match outside.tax(place, vat_id, date)? {
        Some(tax) => (Treatment::OtherJurisdiction, tax.rate, tax.mention),
        None => (Treatment::OutsideEu, VatRate::ZERO, None),
    };
    Ok(Determination {
        treatment,
        place_of_supply: place,
        rate,
        mention,
        reporting: Reporting::NotEuVat,
        vat_id,
        dissenting_evidence: dissent,
    })
}
