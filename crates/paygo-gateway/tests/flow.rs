//! The flow of a call through the in-process gateway: what is charged, held, refused and
//! given back, with the HTTP status of each answer; and, as a property, that a random mix
//! of calls charges exactly what their quotes said and never more than was held.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
#![allow(clippy::cast_possible_wrap)] // generated values are small

use paygo_billing::{CardKind, CustomerId, HoldId, PaymentMethod, Refusal, TopUpId, block_on};
use paygo_credits::{Credits, Money};
use paygo_gateway::{Admitted, Call, Gateway, GatewayError, GatewayOptions, InProcessGateway, Rejection};
use paygo_pricing::{DEFAULT_PRICES, PriceBook, Usage};
use paygo_ratelimit::{NS_PER_HOUR, Plan, Policy, PolicyName, Quota, Unit};
use paygo_time::{Clock, ManualClock};
use proptest::prelude::*;

/// 2026-11-24T12:00:00Z.
const NOON: u64 = 1_763_985_600_000_000_000;

fn gateway(plan: &Plan) -> (InProcessGateway<ManualClock>, ManualClock) {
    let clock = ManualClock::new(NOON);
    let options = GatewayOptions::new(PriceBook::from_json(DEFAULT_PRICES).unwrap(), clock.clone());
    (Gateway::in_memory(options, plan).unwrap(), clock)
}

fn funded(g: &InProcessGateway<ManualClock>, account: CustomerId, dollars: &str) {
    block_on(async {
        g.open_account(account).await.unwrap();
        g.top_up(
            TopUpId(account.0),
            account,
            Money::usd(dollars.parse().unwrap()),
            PaymentMethod::Card(CardKind::Credit),
        )
        .await
        .unwrap();
    });
}

fn usage(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        ..Usage::default()
    }
}

fn available(g: &InProcessGateway<ManualClock>, account: CustomerId) -> i64 {
    block_on(g.balance(account)).unwrap().available.get()
}

/// A plan of requests per hour and tokens per minute, for token accounting.
fn plan_with_tokens(requests: u64, tokens: u64) -> Plan {
    Plan {
        name: "tokens".into(),
        policies: vec![
            Policy {
                name: PolicyName::new("requests").unwrap(),
                unit: Unit::Requests,
                quota: Quota::per_hour(requests, requests).unwrap(),
            },
            Policy {
                name: PolicyName::new("tokens").unwrap(),
                unit: Unit::Tokens,
                quota: Quota::per_minute(tokens, tokens).unwrap(),
            },
        ],
    }
}

#[test]
fn a_call_is_held_charged_at_its_quote_and_a_retry_charges_nothing_more() {
    let (g, _) = gateway(&Plan::pay_as_you_go());
    let account = CustomerId(1);
    funded(&g, account, "10.00");
    block_on(async {
        let admitted = g
            .admit(&Call::tokens(HoldId(10), account, "gpt-4o", 1_000, 500))
            .await
            .unwrap();
        // 1,000 × $2.50/M + 500 × $10/M = $0.0075 = 15,000 credits, and one for the carrier.
        assert_eq!(admitted.held, Credits::new(15_001));
        assert_eq!(available(&g, account), 20_000_000 - 15_001);
        assert!(
            admitted
                .rate_limit_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("ratelimit"))
        );
        let done = g.complete(&admitted, &usage(1_000, 120)).await.unwrap();
        assert_eq!(done.charged, Credits::new(7_400));
        assert_eq!(done.shortfall, Credits::ZERO);
        assert_eq!(available(&g, account), 20_000_000 - 7_400);
        // The same completion again: the same answer, nothing more charged.
        let again = g.complete(&admitted, &usage(1_000, 120)).await.unwrap();
        assert_eq!(again.charged, done.charged);
        assert_eq!(available(&g, account), 20_000_000 - 7_400);
    });
}

#[test]
fn refusals_say_why_with_their_status_and_charge_nothing() {
    let (g, _) = gateway(&Plan::pay_as_you_go());
    let account = CustomerId(2);
    block_on(async {
        g.open_account(account).await.unwrap();
        let call = Call::tokens(HoldId(1), account, "gpt-4o", 1_000, 500);
        let broke = g.admit(&call).await.unwrap_err();
        assert_eq!(broke, Rejection::InsufficientCredits);
        assert_eq!(
            (broke.status().http, broke.status().code),
            (403, "insufficient_credits")
        );
        let unknown = g
            .admit(&Call {
                model: "no-such-model",
                ..call
            })
            .await
            .unwrap_err();
        assert_eq!((unknown.status().http, unknown.status().code), (404, "model_not_found"));
        let stranger = g
            .admit(&Call {
                id: HoldId(2),
                account: CustomerId(99),
                ..call
            })
            .await
            .unwrap_err();
        assert_eq!(stranger, Rejection::Refused(Refusal::UnknownAccount));
        assert_eq!(stranger.status().http, 404);
        let gift = g
            .top_up(
                TopUpId(5),
                account,
                Money::usd("5.00".parse().unwrap()),
                PaymentMethod::GiftCard,
            )
            .await
            .unwrap_err();
        assert!(matches!(gift, GatewayError::Refused(Refusal::PaymentMethodRefused(_))));
        assert_eq!(gift.status().http, 402);
    });
    assert_eq!(available(&g, account), 0);
}

#[test]
fn the_plan_limits_requests_with_a_429_and_retry_after() {
    let plan = Plan {
        name: "tiny".into(),
        policies: vec![Policy {
            name: PolicyName::new("requests").unwrap(),
            unit: Unit::Requests,
            quota: Quota::per_hour(3, 3).unwrap(),
        }],
    };
    let (g, clock) = gateway(&plan);
    let account = CustomerId(3);
    funded(&g, account, "10.00");
    block_on(async {
        for i in 0..3 {
            let admitted = g
                .admit(&Call::tokens(HoldId(i), account, "gpt-4o-mini", 10, 10))
                .await
                .unwrap();
            g.fail(&admitted).await.unwrap();
        }
        let limited = g
            .admit(&Call::tokens(HoldId(9), account, "gpt-4o-mini", 10, 10))
            .await
            .unwrap_err();
        let Rejection::RateLimited {
            retry_after_ns,
            headers,
        } = &limited
        else {
            panic!("{limited:?}")
        };
        // Three at once used the whole hour's quota: the rolling-window promise.
        assert_eq!(*retry_after_ns, NS_PER_HOUR);
        assert!(
            headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("retry-after") && v == "3600")
        );
        assert_eq!(limited.status().http, 429);
        // After the retry-after, it goes through; the failed calls cost nothing.
        clock.advance_ns(*retry_after_ns);
        let last = g
            .admit(&Call::tokens(HoldId(10), account, "gpt-4o-mini", 10, 10))
            .await
            .unwrap();
        assert_eq!(available(&g, account), 20_000_000 - last.held.get());
    });
}

#[test]
fn token_limits_reserve_the_estimate_and_get_back_what_was_not_used() {
    let (g, _) = gateway(&plan_with_tokens(1_000, 10_000));
    let account = CustomerId(4);
    funded(&g, account, "10.00");
    let remaining = |admitted: &Admitted| -> u64 {
        // The tokens limit's remaining units, from the admission's headers.
        let _ = admitted;
        let checked = block_on(g.limiter().check_weights(&account, &[0, 1])).unwrap();
        checked.value.decisions[1].remaining
    };
    block_on(async {
        let a = g
            .admit(&Call::tokens(HoldId(1), account, "gpt-4o-mini", 2_000, 3_000))
            .await
            .unwrap();
        assert_eq!(a.reserved_tokens, 5_000);
        // 5,000 reserved, then one more token taken by the probe.
        assert_eq!(remaining(&a), 10_000 - 5_000 - 1);
        g.complete(&a, &usage(2_000, 500)).await.unwrap();
        // It used 2,500: 2,500 came back.
        assert_eq!(remaining(&a), 10_000 - 2_500 - 2);
        // A call that is not charged gives all of its reservation back.
        let b = g
            .admit(&Call::tokens(HoldId(2), account, "gpt-4o-mini", 1_000, 1_000))
            .await
            .unwrap();
        g.fail(&b).await.unwrap();
        assert_eq!(remaining(&b), 10_000 - 2_500 - 3);
        // An estimate above the burst can never pass: a 400, nothing taken.
        let too_big = g
            .admit(&Call::tokens(HoldId(3), account, "gpt-4o-mini", 9_000, 2_000))
            .await
            .unwrap_err();
        assert_eq!(too_big.status().http, 400);
    });
    // A refused hold gives its tokens back too.
    let broke = CustomerId(5);
    block_on(g.open_account(broke)).unwrap();
    let refused = block_on(g.admit(&Call::tokens(HoldId(4), broke, "gpt-4o-mini", 1_000, 1_000))).unwrap_err();
    assert_eq!(refused, Rejection::InsufficientCredits);
    let checked = block_on(g.limiter().check_weights(&broke, &[0, 1])).unwrap();
    assert_eq!(checked.value.decisions[1].remaining, 10_000 - 1);
}

#[test]
fn a_failed_call_costs_nothing_and_cannot_be_charged_after() {
    let (g, _) = gateway(&Plan::pay_as_you_go());
    let account = CustomerId(6);
    funded(&g, account, "1.00");
    block_on(async {
        let a = g
            .admit(&Call::tokens(HoldId(1), account, "o3", 5_000, 5_000))
            .await
            .unwrap();
        g.fail(&a).await.unwrap();
        g.fail(&a).await.unwrap(); // a retry answers the same
        assert_eq!(available(&g, account), 2_000_000);
        let late = g.complete(&a, &usage(5_000, 100)).await.unwrap_err();
        assert_eq!(late, GatewayError::Refused(Refusal::HoldReleased));
        assert_eq!(late.status().http, 409);
    });
}

#[test]
fn a_call_without_usage_pays_for_its_input_and_at_least_a_credit() {
    let (g, _) = gateway(&Plan::pay_as_you_go());
    let account = CustomerId(7);
    funded(&g, account, "1.00");
    block_on(async {
        let a = g
            .admit(&Call::tokens(HoldId(1), account, "gpt-4o", 2_000, 4_000))
            .await
            .unwrap();
        let settled = g.settle_without_usage(&a).await.unwrap();
        // 2,000 prompt tokens × $2.50/M = $0.005 = 10,000 credits; no output.
        assert_eq!(settled.charged, Credits::new(10_000));
        assert!(settled.charged <= a.held);
        // A tiny prompt still costs a credit: something was produced.
        let b = g
            .admit(&Call::tokens(HoldId(2), account, "gpt-4o-mini", 1, 10))
            .await
            .unwrap();
        let tiny = g.settle_without_usage(&b).await.unwrap();
        assert_eq!(tiny.charged, Credits::new(1));
        assert_eq!(available(&g, account), 2_000_000 - 10_000 - 1);
    });
}

#[test]
fn a_long_stream_keeps_its_hold_alive_and_is_charged_after_the_first_timeout() {
    let (g, clock) = gateway(&Plan::pay_as_you_go());
    let account = CustomerId(9);
    funded(&g, account, "1.00");
    block_on(async {
        let a = g
            .admit(&Call::tokens(HoldId(1), account, "gpt-4o", 1_000, 1_000))
            .await
            .unwrap();
        // Every five minutes of a 25-minute stream (the hold lasts ten), the hold is renewed.
        for _ in 0..5 {
            clock.advance_ns(5 * 60 * 1_000_000_000);
            let until = g.extend_hold(&a).await.unwrap();
            assert_eq!(until, clock.now_ns() + 600 * 1_000_000_000);
            assert_eq!(available(&g, account), 2_000_000 - a.held.get());
        }
        let done = g.complete(&a, &usage(1_000, 900)).await.unwrap();
        assert_eq!(done.charged, Credits::new(23_000)); // 1,000 × $2.50/M + 900 × $10/M
        // A hold left alone expires: its credits come back, and it cannot be extended.
        let b = g
            .admit(&Call::tokens(HoldId(2), account, "gpt-4o", 1_000, 1_000))
            .await
            .unwrap();
        clock.advance_ns(601 * 1_000_000_000);
        assert_eq!(
            g.extend_hold(&b).await.unwrap_err(),
            GatewayError::Refused(Refusal::HoldExpired)
        );
        assert_eq!(available(&g, account), 2_000_000 - 23_000);
    });
}

#[test]
fn usage_the_book_cannot_price_releases_the_hold_and_says_so() {
    let (g, _) = gateway(&Plan::pay_as_you_go());
    let account = CustomerId(8);
    funded(&g, account, "1.00");
    block_on(async {
        let a = g
            .admit(&Call::tokens(HoldId(1), account, "gpt-4o", 100, 100))
            .await
            .unwrap();
        let mut odd = usage(100, 10);
        odd.output_images = 3; // gpt-4o prices no output images: never billed as $0
        let err = g.complete(&a, &odd).await.unwrap_err();
        assert!(matches!(err, GatewayError::Pricing(_)), "{err:?}");
        assert_eq!(err.status().http, 502);
        assert_eq!(available(&g, account), 2_000_000);
    });
}

#[test]
fn the_gateway_and_its_futures_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let (g, _) = gateway(&Plan::pay_as_you_go());
    send_sync(&g);
    let call = Call::tokens(HoldId(1), CustomerId(1), "gpt-4o", 1, 1);
    send(g.admit(&call));
    send(g.balance(CustomerId(1)));
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(64, "tests/flow.proptest-regressions"))]

    /// Random calls (completed, failed, settled without usage, retried), some beyond the
    /// balance: the balance always equals what was bought less what the receipts charged,
    /// each charge is at most its hold and the carrier's charge for its quote, and the
    /// balance never goes below zero.
    #[test]
    fn balances_are_purchases_less_charges(steps in prop::collection::vec((0u8..4, 1u64..200_000, 0u64..50_000), 1..40)) {
        let (g, _) = gateway(&Plan::pay_as_you_go());
        let account = CustomerId(1);
        funded(&g, account, "0.50");
        let mut charged = 0i64;
        for (i, (what, prompt, output)) in steps.into_iter().enumerate() {
            let call = Call::tokens(HoldId(1_000 + i as u128), account, "gpt-4o-mini", prompt, output);
            let admitted = match block_on(g.admit(&call)) {
                Ok(a) => a,
                Err(Rejection::InsufficientCredits) => continue,
                Err(other) => panic!("{other:?}"),
            };
            let done = match what {
                0 => {
                    block_on(g.fail(&admitted)).unwrap();
                    None
                }
                1 => Some(block_on(g.settle_without_usage(&admitted)).unwrap()),
                _ => {
                    let u = usage(prompt, output / 2);
                    let first = block_on(g.complete(&admitted, &u)).unwrap();
                    if what == 3 {
                        let again = block_on(g.complete(&admitted, &u)).unwrap();
                        prop_assert_eq!(&again.charged, &first.charged);
                    }
                    Some(first)
                }
            };
            if let Some(done) = done {
                prop_assert!(done.charged <= admitted.held);
                prop_assert!(done.charged.get() <= done.quote.credits.get().max(1) + 1);
                charged += done.charged.get();
            }
            let balance = available(&g, account);
            prop_assert!(balance >= 0);
            prop_assert_eq!(balance, 1_000_000 - charged);
        }
    }
}
