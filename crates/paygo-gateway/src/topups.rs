//! The top-up service: a payment the provider reports → the credits it buys → the VAT of
//! the supply → the invoice, in that order, each step idempotent.

use std::sync::Arc;

use chrono::NaiveDate;
use paygo_billing::Reply;
use paygo_billing::{
    BillingStore, Command, CustomerId, MethodRefusal, PaymentMethod, PaymentOutcome, Receipt, Refusal,
};
use paygo_billing::{RequestId, TopUpId, TopUpRequest};
use paygo_credits::{CreditRate, Credits, Currency, FxRate, Money, Rounding};
use paygo_invoice::{
    Document, DocumentId, Draft, InvoiceError, Invoicing, LineInput, Party, Payment, PaymentMethod as InvoicePayment,
    RoundingRules, SequenceStore, SeriesName,
};
use paygo_invoice::{DocumentNumber, Prepared, VatRefundDraft};
use paygo_vat::{
    Country, Customer, Determination, LocationEvidence, OutsideEuRules, RefundDecision, RefundPolicy, RefundRequest,
    RejectReason, RetryReason, Seller, Supply, VatId, VatIdConfirmer, VatIdStatus, decide_refund, determine,
};
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

/// Which payment a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaidFor {
    /// A top-up the customer made (the provider's payment id).
    TopUp {
        /// The top-up's id.
        id: TopUpId,
    },
    /// An auto top-up request the billing layer emitted, now paid.
    AutoTopUp {
        /// The request.
        request: RequestId,
    },
}

/// Who bought, as the invoice shows them and as VAT is determined for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    /// The name on the invoice.
    pub name: String,
    /// The address lines.
    pub address: Vec<String>,
    /// Where the customer is: the evidence VAT is determined from (the billing country is
    /// the invoice's country).
    pub evidence: LocationEvidence,
    /// A business customer's VAT ID (reverse charge within the EU once confirmed).
    pub vat_id: Option<VatId>,
}

/// A payment the provider reports as paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidTopUp {
    /// What was paid for.
    pub paid_for: PaidFor,
    /// The customer.
    pub customer: CustomerId,
    /// The price of the credits, in USD: what they buy at the credit rate, and the net
    /// amount of the invoice (VAT, where due, is on top: the provider charged the gross).
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// The provider's reference of the charge (on the invoice, and the invoice's id: a
    /// report delivered twice issues one invoice).
    pub reference: String,
    /// The day the money moved (the supply date and the invoice's issue date).
    pub paid_on: NaiveDate,
    /// The buyer.
    pub buyer: Buyer,
    /// The buyer's purchase-order number or reference, shown on the invoice.
    pub purchase_order: Option<String>,
}

impl PaidTopUp {
    /// The report of a paid auto top-up `request`: its customer, amount, method and
    /// purchase order, and its tax ID as the buyer's VAT ID when `buyer` has none and the
    /// tax ID is a VAT ID (a tax ID of another kind is not one an EU invoice can use for
    /// VAT, and VAT is then determined without it).
    pub fn for_request(request: &TopUpRequest, reference: String, paid_on: NaiveDate, mut buyer: Buyer) -> PaidTopUp {
        if buyer.vat_id.is_none() {
            buyer.vat_id = request.buyer_tax_id.and_then(|id| VatId::parse(id.as_str()).ok());
        }
        PaidTopUp {
            paid_for: PaidFor::AutoTopUp { request: request.id },
            customer: request.customer,
            amount: request.amount,
            method: request.method,
            reference,
            paid_on,
            buyer,
            purchase_order: request.purchase_order.map(|po| po.as_str().to_owned()),
        }
    }
}

/// A recorded and invoiced top-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoiced {
    /// The credits it bought.
    pub credits: Credits,
    /// The invoice.
    pub invoice: Document,
}

/// What a request for the VAT of an invoice back came to ([`TopUps::refund_vat`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum VatRefund {
    /// Approved: the credit note that gives the VAT back (issued now, or earlier for the
    /// same invoice).
    CreditNote(Box<Document>),
    /// Rejected, and why.
    Rejected(RejectReason),
    /// Not decided: ask again later (the VAT ID could not be confirmed now).
    RetryLater(RetryReason),
}

/// The exchange rates the invoices need: USD to the national currency of the member state
/// of supply on a day (Article 230), or `None` when the service has none for that day
/// (an invoice that needs one is then refused, never issued without it).
pub trait FxRates: Send + Sync {
    /// The rate from USD to `to` on `day`.
    fn usd_to(&self, to: Currency, day: NaiveDate) -> Option<FxRate>;
}

impl<F: Fn(Currency, NaiveDate) -> Option<FxRate> + Send + Sync> FxRates for F {
    fn usd_to(&self, to: Currency, day: NaiveDate) -> Option<FxRate> {
        self(to, day)
    }
}

/// How the service invoices.
#[derive(Clone)]
pub struct TopUpOptions {
    /// The seller as the invoice shows it (with its VAT ID).
    pub seller: Party,
    /// The seller for VAT: its member state and OSS registration.
    pub seller_vat: Seller,
    /// The invoice series.
    pub series: SeriesName,
    /// The credit-note series of VAT refunds ([`TopUps::refund_vat`]); `None`: refunds are
    /// refused.
    pub credit_note_series: Option<SeriesName>,
    /// USD to credits (the billing layer's rate: the line says how many credits).
    pub credit_rate: CreditRate,
    /// How amounts round.
    pub rounding: RoundingRules,
    /// Confirms VAT IDs (VIES, or a cache of it).
    pub confirmer: Arc<dyn VatIdConfirmer + Send + Sync>,
    /// The rules for customers outside the EU.
    pub outside_eu: Arc<dyn OutsideEuRules + Send + Sync>,
    /// The exchange rates.
    pub fx: Arc<dyn FxRates>,
}

impl std::fmt::Debug for TopUpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopUpOptions")
            .field("seller", &self.seller)
            .field("series", &self.series)
            .finish_non_exhaustive()
    }
}

/// The top-up service: records a paid top-up in the billing store and invoices it with
/// the VAT of the supply.
///
/// Each step is idempotent, so a report delivered twice (a webhook retried) credits once
/// and invoices once: the billing command has the payment's id, and the invoice's id is
/// the provider's reference. The invoice journal syncs each number it hands out: call
/// `record` where a short blocking write is acceptable (top-ups are rare next to calls).
pub struct TopUps<S> {
    invoicing: Invoicing<S>,
    options: TopUpOptions,
    joint: Option<Arc<dyn JointTopUps>>,
}

/// What [`JointTopUps::top_up_invoiced`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Joint {
    /// The command credited and the invoice took `number`: both committed together.
    Issued {
        /// The command's reply.
        reply: Reply,
        /// The invoice's number in its series.
        number: u64,
        /// The invoice, sealed with `number` (for [`Invoicing::adopt`]).
        invoice: Box<Prepared>,
    },
    /// The command did not credit (a refusal): nothing committed but its reply, no number
    /// taken.
    NotCredited {
        /// The command's reply.
        reply: Reply,
    },
    /// An invoice with this id is recorded already: nothing was committed.
    AlreadyIssued,
}

/// A billing store that records a top-up's credits and its invoice's number in one
/// transaction (`paygo_postgres::PgStore`, whose database holds both), so that a crash can
/// never leave one without the other. [`TopUps::with_joint`] makes [`TopUps::record`] use it.
pub trait JointTopUps: Send + Sync {
    /// Applies `command` (a top-up, or a payment report) and, when it credits, records
    /// `invoice` with the next number of its series, in one transaction.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Billing`] when the store fails (nothing committed; retry);
    /// [`GatewayError::Invoice`] when the invoice cannot be sealed or recorded (nothing
    /// committed).
    fn top_up_invoiced(
        &self,
        command: Command,
        invoice: Prepared,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Joint, GatewayError>> + Send + '_>>;
}

impl<S> std::fmt::Debug for TopUps<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopUps")
            .field("options", &self.options)
            .field("joint", &self.joint.is_some())
            .finish_non_exhaustive()
    }
}

/// The invoice's payment method for a billing payment method (gift cards are refused by
/// the billing layer before anything is invoiced).
fn invoice_method(method: PaymentMethod) -> Result<InvoicePayment, GatewayError> {
    match method {
        PaymentMethod::Card(_) => Ok(InvoicePayment::Card),
        PaymentMethod::PayPal => Ok(InvoicePayment::PayPal),
        PaymentMethod::Crypto => Ok(InvoicePayment::Crypto),
        PaymentMethod::GiftCard => Err(GatewayError::Refused(Refusal::PaymentMethodRefused(
            MethodRefusal::GiftCard,
        ))),
    }
}

impl<S: SequenceStore> TopUps<S> {
    /// The service, issuing invoices through `invoicing`.
    pub fn new(invoicing: Invoicing<S>, options: TopUpOptions) -> TopUps<S> {
        TopUps {
            invoicing,
            options,
            joint: None,
        }
    }

    /// The service, recording each top-up's credits and invoice together through `joint`
    /// (which must number in the store `invoicing` reads).
    #[must_use]
    pub fn with_joint(mut self, joint: Arc<dyn JointTopUps>) -> TopUps<S> {
        self.set_joint(joint);
        self
    }

    /// As [`TopUps::with_joint`], in place.
    pub fn set_joint(&mut self, joint: Arc<dyn JointTopUps>) {
        self.joint = Some(joint);
    }

    /// The invoicing book (to list, read and credit documents).
    pub fn invoicing(&self) -> &Invoicing<S> {
        &self.invoicing
    }

    /// Records `paid` in `billing` (a top-up, or an auto top-up request reported paid),
    /// determines its VAT and issues its invoice. Reported again, it answers the same
    /// credits and the same invoice.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Refused`] when the billing layer refuses the payment (a refused
    /// method, an unknown account or request; nothing is invoiced);
    /// [`GatewayError::Billing`]; [`GatewayError::Vat`] when VAT cannot be determined;
    /// [`GatewayError::Invoice`] when the invoice cannot be issued (the credits are
    /// recorded then: reporting the payment again issues it once the cause is fixed).
    pub async fn record<B: BillingStore>(&self, billing: &B, paid: &PaidTopUp) -> Result<Invoiced, GatewayError> {
        let command = match paid.paid_for {
            PaidFor::TopUp { id } => Command::TopUp {
                id,
                customer: paid.customer,
                amount: paid.amount,
                method: paid.method,
            },
            PaidFor::AutoTopUp { request } => Command::ReportPayment {
                request,
                outcome: PaymentOutcome::Succeeded,
            },
        };
        let method = invoice_method(paid.method)?;
        // The VAT first: a payment whose VAT cannot be determined (too little location
        // evidence for a consumer) is refused before anything is credited, so that the
        // report can be corrected and sent again.
        let id = DocumentId::new(&paid.reference)?;
        let issued = self.invoicing.get_by_id(&id)?;
        let vat = match issued {
            Some(_) => None,
            None => Some(self.vat(paid)?),
        };
        if let (Some(joint), None, Some(vat)) = (&self.joint, &issued, &vat) {
            let draft = self.draft(paid, method, id.clone(), vat.clone())?;
            let prepared = self.invoicing.prepare(&draft, paid.paid_on)?;
            match joint.top_up_invoiced(command, prepared).await? {
                Joint::Issued { reply, number, invoice } => {
                    let credits = match reply {
                        Ok(Receipt::ToppedUp { credits } | Receipt::PaymentRecorded { credits, .. }) => credits,
                        other => {
                            return Err(GatewayError::Contract {
                                what: format!("a joint top-up issued an invoice for {other:?}"),
                            });
                        }
                    };
                    let invoice = self.invoicing.adopt(*invoice, number)?;
                    return Ok(Invoiced { credits, invoice });
                }
                Joint::NotCredited { reply: Err(refusal) } => return Err(GatewayError::Refused(refusal)),
                Joint::NotCredited { reply } => {
                    return Err(GatewayError::Contract {
                        what: format!("a joint top-up credited nothing but answered {reply:?}"),
                    });
                }
                // Recorded by another replica (or before): learnt below, the credits
                // answered from the stored reply.
                Joint::AlreadyIssued => self.invoicing.refresh().map(drop)?,
            }
        }
        let issued = match issued {
            Some(doc) => Some(doc),
            None => self.invoicing.get_by_id(&id)?,
        };
        let replies = billing.submit(vec![command]).await?;
        let credits = match replies.as_slice() {
            [Ok(Receipt::ToppedUp { credits } | Receipt::PaymentRecorded { credits, .. })] => *credits,
            [Err(refusal)] => return Err(GatewayError::Refused(*refusal)),
            other => {
                return Err(GatewayError::Contract {
                    what: format!("a top-up answered {other:?}"),
                });
            }
        };
        let invoice = match (issued, vat) {
            (Some(document), _) => document,
            (None, Some(vat)) => match self.invoice(paid, method, id.clone(), vat) {
                // Issued by another replica on a shared store (one that answered the
                // payment, or died before answering it): this one learns it and answers
                // with that invoice, as a retry on the same replica would.
                Err(GatewayError::Invoice(InvoiceError::AlreadyIssued { .. })) => {
                    self.invoicing.refresh()?;
                    self.invoicing.get_by_id(&id)?.ok_or_else(|| GatewayError::Contract {
                        what: format!("document {id} was refused as issued but is not in the store"),
                    })?
                }
                other => other?,
            },
            // `vat` is determined whenever no invoice was issued.
            (None, None) => {
                return Err(GatewayError::Contract {
                    what: "a top-up without its VAT".into(),
                });
            }
        };
        Ok(Invoiced { credits, invoice })
    }

    /// Whether `id` is confirmed (VIES, or the cache of it the options give).
    pub fn confirm_vat_id(&self, id: &VatId) -> VatIdStatus {
        self.options.confirmer.confirm(id)
    }

    /// Asks for the VAT of invoice `invoice` back, the customer having given `vat_id` (a
    /// business customer who paid VAT before giving it): the VAT ID is confirmed, the
    /// refund decided by [`decide_refund`] (the seller's member state, the default time
    /// limit), and an approved refund issued as a VAT-only credit note in the credit-note
    /// series, refunded the way the invoice was paid. Asked again for the same invoice, an
    /// approved refund answers the credit note issued the first time (its id is
    /// `vat-refund-` and the invoice's number), on any replica.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Invoice`]: [`InvoiceError::UnknownDocument`] for an unknown invoice,
    /// [`InvoiceError::NotEuSupply`], [`InvoiceError::UnknownSeries`] when no credit-note
    /// series is configured, and the errors of issuing; [`GatewayError::Vat`] for facts
    /// the decision cannot use.
    pub fn refund_vat(
        &self,
        invoice: &DocumentNumber,
        vat_id: VatId,
        requested_on: NaiveDate,
    ) -> Result<VatRefund, GatewayError> {
        let id = DocumentId::new(&format!("vat-refund-{invoice}"))?;
        if let Some(note) = self.invoicing.get_by_id(&id)? {
            return Ok(VatRefund::CreditNote(Box::new(note)));
        }
        let series = self
            .options
            .credit_note_series
            .clone()
            .ok_or_else(|| InvoiceError::UnknownSeries {
                series: "(no credit-note series configured for VAT refunds)".into(),
            })?;
        let original = self
            .invoicing
            .get(invoice)?
            .ok_or_else(|| InvoiceError::UnknownDocument {
                number: invoice.to_string(),
            })?;
        let request = RefundRequest {
            invoice: self.invoicing.refund_facts(invoice)?,
            vat_id,
            confirmation: self.options.confirmer.confirm(&vat_id),
            requested_on,
        };
        let decision = decide_refund(&request, &RefundPolicy::new(self.options.seller_vat.country))?;
        match decision {
            RefundDecision::Approved { .. } => {}
            RefundDecision::Rejected { reason } => return Ok(VatRefund::Rejected(reason)),
            RefundDecision::RetryLater { reason } => return Ok(VatRefund::RetryLater(reason)),
        }
        let draft = VatRefundDraft {
            id: id.clone(),
            series,
            original: invoice.clone(),
            refund: Payment {
                method: original.payment().method,
                reference: id.to_string(),
                paid_on: Some(requested_on),
            },
        };
        match self.invoicing.issue_vat_refund(&draft, &decision, requested_on) {
            Ok(note) => Ok(VatRefund::CreditNote(Box::new(note))),
            // Issued by another replica: learnt, as for invoices.
            Err(InvoiceError::AlreadyIssued { .. }) => {
                self.invoicing.refresh()?;
                let note = self.invoicing.get_by_id(&id)?.ok_or_else(|| GatewayError::Contract {
                    what: format!("document {id} was refused as issued but is not in the store"),
                })?;
                Ok(VatRefund::CreditNote(Box::new(note)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The VAT of the supply `paid`.
    fn vat(&self, paid: &PaidTopUp) -> Result<Determination, GatewayError> {
        let supply = Supply {
            seller: self.options.seller_vat,
            customer: Customer {
                evidence: paid.buyer.evidence,
                vat_id: paid.buyer.vat_id,
            },
            date: paid.paid_on,
        };
        Ok(determine(&supply, &*self.options.confirmer, &*self.options.outside_eu)?)
    }

    /// Issues the invoice `id` of `paid`, with its VAT.
    fn invoice(
        &self,
        paid: &PaidTopUp,
        method: InvoicePayment,
        id: DocumentId,
        vat: Determination,
    ) -> Result<Document, GatewayError> {
        let draft = self.draft(paid, method, id, vat)?;
        Ok(self.invoicing.issue(&draft, paid.paid_on)?)
    }

    /// The invoice `id` of `paid`, with its VAT, as a draft.
    fn draft(
        &self,
        paid: &PaidTopUp,
        method: InvoicePayment,
        id: DocumentId,
        vat: Determination,
    ) -> Result<Draft, GatewayError> {
        let day = paid.paid_on;
        let buyer = &paid.buyer;
        let country = buyer.evidence.billing_country.ok_or_else(|| {
            GatewayError::Invoice(InvoiceError::InvalidText {
                field: "buyer country".into(),
                reason: "no billing country in the buyer's evidence: an invoice shows the buyer's country",
            })
        })?;
        let national = Country::from_iso(country).map(|c| c.national_currency(day));
        let national_fx = national
            .filter(|c| *c != Currency::USD)
            .and_then(|c| self.options.fx.usd_to(c, day));
        let credits = self.options.credit_rate.to_credits(&paid.amount, Rounding::Down)?;
        let draft = Draft {
            id,
            series: self.options.series.clone(),
            seller: self.options.seller.clone(),
            buyer: Party {
                name: buyer.name.clone(),
                address: buyer.address.clone(),
                country,
                vat_id: buyer.vat_id,
            },
            supply_date: day,
            currency: Currency::USD,
            lines: vec![LineInput {
                description: format!("API credits top-up: {credits} credits"),
                quantity: 1.into(),
                unit_price: paid.amount,
            }],
            vat,
            payment: Payment {
                method,
                reference: paid.reference.clone(),
                paid_on: Some(day),
            },
            rules: self.options.rounding,
            national_fx,
            buyer_reference: paid.purchase_order.clone(),
            customer_number: Some(paid.customer.0.to_string()),
        };
        Ok(draft)
    }
}
