//! Response headers for rate-limit decisions, as `(name, value)` pairs, so that no HTTP
//! crate is needed.
//!
//! - IETF `RateLimit-Policy` and `RateLimit` in the syntax of
//!   draft-ietf-httpapi-ratelimit-headers-10 (structured-field lists):
//!   `RateLimit-Policy: "payg";q=18000;w=3600` and `RateLimit: "payg";r=17;t=13`.
//!   `q` is the limit, `w` the period in seconds (rounded up), `r` the units that can be
//!   sent now, `t` the seconds until the key is full again (rounded up, so a client
//!   never comes back too early).
//! - `Retry-After` in delta-seconds (rounded up), only for a refusal.
//! - OpenAI-style `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
//!   `x-ratelimit-reset-requests` (and `-tokens`): the reset is a duration such as
//!   `20ms`, `12.04s` or `6m0s`, rounded up to the millisecond.
//!
//! ```
//! use paygo_ratelimit::{Decision, PolicyName, Unit, headers};
//!
//! let payg = PolicyName::new("payg")?;
//! let decision = Decision {
//!     allowed: true,
//!     limit: 18_000,
//!     period_ns: 3_600_000_000_000,
//!     remaining: 17,
//!     reset_ns: 8_600_000_000,
//!     retry_after_ns: None,
//! };
//! assert_eq!(headers::ratelimit_policy(&[(&payg, &decision)]), ("RateLimit-Policy", "\"payg\";q=18000;w=3600".to_owned()));
//! assert_eq!(headers::ratelimit(&[(&payg, &decision)]), ("RateLimit", "\"payg\";r=17;t=9".to_owned()));
//! assert_eq!(headers::retry_after(&[&decision]), None);
//! assert_eq!(
//!     headers::openai(Unit::Requests, &decision),
//!     [
//!         ("x-ratelimit-limit-requests", "18000".to_owned()),
//!         ("x-ratelimit-remaining-requests", "17".to_owned()),
//!         ("x-ratelimit-reset-requests", "8.6s".to_owned()),
//!     ]
//! );
//! # Ok::<(), paygo_ratelimit::RateLimitError>(())
//! ```

use std::fmt::Write as _;

use crate::gcra::Decision;
use crate::quota::{NS_PER_SECOND, PolicyName, Unit};

/// `RateLimit-Policy`: one list member per policy, `"name";q=limit;w=seconds`.
pub fn ratelimit_policy(items: &[(&PolicyName, &Decision)]) -> (&'static str, String) {
    let mut value = String::new();
    for (i, (name, d)) in items.iter().enumerate() {
        if i > 0 {
            value.push_str(", ");
        }
        let _ = write!(value, "\"{name}\";q={};w={}", d.limit, ceil_seconds(d.period_ns));
    }
    ("RateLimit-Policy", value)
}

/// `RateLimit`: one list member per policy, `"name";r=remaining;t=seconds-to-reset`.
pub fn ratelimit(items: &[(&PolicyName, &Decision)]) -> (&'static str, String) {
    let mut value = String::new();
    for (i, (name, d)) in items.iter().enumerate() {
        if i > 0 {
            value.push_str(", ");
        }
        let _ = write!(value, "\"{name}\";r={};t={}", d.remaining, ceil_seconds(d.reset_ns));
    }
    ("RateLimit", value)
}

/// `Retry-After` in whole seconds, rounded up, from the largest retry-after among the
/// decisions; `None` if none was refused.
pub fn retry_after(decisions: &[&Decision]) -> Option<(&'static str, String)> {
    let ns = decisions.iter().filter_map(|d| d.retry_after_ns).max()?;
    Some(("Retry-After", ceil_seconds(ns).to_string()))
}

/// The OpenAI-style trio for one limit: `x-ratelimit-limit-<unit>`,
/// `x-ratelimit-remaining-<unit>` and `x-ratelimit-reset-<unit>`.
pub fn openai(unit: Unit, decision: &Decision) -> [(&'static str, String); 3] {
    let (limit, remaining, reset) = match unit {
        Unit::Requests => (
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        Unit::Tokens => (
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ),
    };
    [
        (limit, decision.limit.to_string()),
        (remaining, decision.remaining.to_string()),
        (reset, duration_text(decision.reset_ns)),
    ]
}

/// Every header for a set of decisions on one key: `RateLimit-Policy`, `RateLimit`,
/// `Retry-After` (if any refused) and the OpenAI-style trio for the most restrictive limit
/// of each unit: a refusing one first (the longest wait), else the one with the fewest
/// units remaining (the later reset on a tie), so the trio never says "8 remaining" next to
/// a refusal.
pub fn all(items: &[(&PolicyName, Unit, &Decision)]) -> Vec<(&'static str, String)> {
    let named: Vec<_> = items.iter().map(|(n, _, d)| (*n, *d)).collect();
    let mut out = vec![ratelimit_policy(&named), ratelimit(&named)];
    let decisions: Vec<_> = items.iter().map(|(_, _, d)| *d).collect();
    out.extend(retry_after(&decisions));
    for unit in [Unit::Requests, Unit::Tokens] {
        let binding = items.iter().filter(|(_, u, _)| *u == unit).min_by_key(|(_, _, d)| {
            (
                d.allowed,
                std::cmp::Reverse(d.retry_after_ns),
                d.remaining,
                std::cmp::Reverse(d.reset_ns),
            )
        });
        if let Some((_, _, d)) = binding {
            out.extend(openai(unit, d));
        }
    }
    out
}

/// Nanoseconds to whole seconds, rounded up.
pub fn ceil_seconds(ns: u64) -> u64 {
    ns.div_ceil(NS_PER_SECOND)
}

/// A duration in the style of the OpenAI-style reset headers, rounded up to the millisecond: `0s`, `20ms`,
/// `1.5s`, `6m0s`, `1h0m0s`.
pub fn duration_text(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / 1_000 % 60;
    let millis = ms % 1_000;
    let mut text = String::new();
    if hours > 0 {
        let _ = write!(text, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(text, "{minutes}m");
    }
    if millis == 0 {
        let _ = write!(text, "{seconds}s");
    } else {
        let fraction = format!("{millis:03}");
        let _ = write!(text, "{seconds}.{}s", fraction.trim_end_matches('0'));
    }
    text
}
