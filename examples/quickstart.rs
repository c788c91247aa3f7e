//! The quickstart: a $10 top-up becomes credits, and a few API calls are priced from their
//! token counts at stated per-million-token prices and charged in whole credits.
//!
//! Run with `cargo run --example quickstart`.

use paygo::credits::{CreditRate, Credits, ExactCredits, Money, RemainderCarrier, Rounding, decimal};

/// A sample call: a model's stated prices (USD per million tokens) and the call's tokens.
struct SampleCall {
    model: &'static str,
    input_usd_per_million: &'static str,
    output_usd_per_million: &'static str,
    prompt_tokens: u64,
    completion_tokens: u64,
}

const CALLS: [SampleCall; 4] = [
    SampleCall {
        model: "gpt-4o-mini",
        input_usd_per_million: "0.15",
        output_usd_per_million: "0.60",
        prompt_tokens: 1_200,
        completion_tokens: 350,
    },
    SampleCall {
        model: "gpt-4o",
        input_usd_per_million: "2.50",
        output_usd_per_million: "10.00",
        prompt_tokens: 3_100,
        completion_tokens: 812,
    },
    SampleCall {
        model: "claude-sonnet-4",
        input_usd_per_million: "3.00",
        output_usd_per_million: "15.00",
        prompt_tokens: 9_870,
        completion_tokens: 1_433,
    },
    SampleCall {
        model: "text-embedding-3-small",
        input_usd_per_million: "0.02",
        output_usd_per_million: "0",
        prompt_tokens: 777,
        completion_tokens: 0,
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rate = CreditRate::default();
    let top_up = Money::parse("10.00", paygo::credits::Currency::USD)?;
    let mut balance = rate.to_credits(&top_up, Rounding::Down)?;
    println!(
        "top-up {top_up} -> {balance} credits (at {} credits per USD)",
        rate.credits_per_unit()
    );
    println!();
    println!(
        "{:<24} {:>8} {:>8} {:>14} {:>9} {:>12}",
        "model", "prompt", "output", "exact credits", "charged", "usd"
    );

    let mut carrier = RemainderCarrier::new();
    let mut exact_total = ExactCredits::ZERO;
    for call in &CALLS {
        let per_token = |per_million: &str| -> Result<ExactCredits, paygo::credits::CreditsError> {
            let usd_per_token = decimal::checked_div_pow10(decimal::parse_plain(per_million)?, 6)?;
            rate.to_exact_credits(&Money::usd(usd_per_token))
        };
        let cost = per_token(call.input_usd_per_million)?
            .checked_mul(call.prompt_tokens.into())?
            .checked_add(per_token(call.output_usd_per_million)?.checked_mul(call.completion_tokens.into())?)?;
        let charged = carrier.charge(cost)?;
        balance = balance.try_sub(charged)?;
        exact_total = exact_total.checked_add(cost)?;
        println!(
            "{:<24} {:>8} {:>8} {:>14} {:>9} {:>12}",
            call.model,
            call.prompt_tokens,
            call.completion_tokens,
            cost.to_string(),
            charged.to_string(),
            rate.to_money_exact(charged)?.amount().to_string(),
        );
    }
    println!();
    let spent = Credits::new(20_000_000).try_sub(balance)?;
    println!(
        "charged {spent} credits for {exact_total} exact; carried remainder {}",
        carrier.remainder()
    );
    println!(
        "balance {balance} credits = {} (rounded down to the cent)",
        rate.to_money(balance, Rounding::Down)?
    );
    Ok(())
}
