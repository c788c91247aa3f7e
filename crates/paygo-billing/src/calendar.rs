//! UTC calendar months from nanoseconds since the Unix epoch, for the auto top-up monthly
//! cap: the civil-from-days and days-from-civil algorithms of Howard Hinnant
//! (<https://howardhinnant.github.io/date_algorithms.html>), proleptic Gregorian, in
//! integers (no date library in this crate).

const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// The civil date (year, month 1-12, day 1-31) of `days` since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // `day` and `month` are in the ranges noted above: the fallbacks are never taken.
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// The days since 1970-01-01 of a civil date (month 1-12, day 1-31).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400); // [0, 399]
    let mp = i64::from((month + 9) % 12); // March first
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The UTC calendar month that `now_ns` falls in: its first nanosecond and the first
/// nanosecond of the next month (`u64::MAX` past the end of the `u64` range, in 2554).
pub(crate) fn month_bounds_ns(now_ns: u64) -> (u64, u64) {
    // Below 2^64 / 86_400e9 < 2^18 days: fits an i64.
    let days = i64::try_from(now_ns / NS_PER_DAY).unwrap_or(i64::MAX);
    let (year, month, _) = civil_from_days(days);
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    // Both are days at or after 1970-01-01 (the month of a time that is): not negative.
    let start = u64::try_from(days_from_civil(year, month, 1)).unwrap_or(0);
    let next = u64::try_from(days_from_civil(next_year, next_month, 1)).unwrap_or(0);
    (start.saturating_mul(NS_PER_DAY), next.saturating_mul(NS_PER_DAY))
}

#[cfg(test)]
mod tests {
    // Test dates are after 1970 and before 2^63 ns.
    #![allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]

    use proptest::prelude::*;

    use super::{NS_PER_DAY, civil_from_days, days_from_civil, month_bounds_ns};

    /// Days since 1970-01-01 counted the slow way: whole years, then whole months.
    fn days_by_counting(year: i64, month: u32, day: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut days = 0i64;
        for y in 1970..year {
            days += if leap(y) { 366 } else { 365 };
        }
        for m in 1..month {
            days += month_days(year, m);
        }
        days + i64::from(day) - 1
    }

    #[test]
    fn known_dates() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (31, (1970, 2, 1)),
            (59, (1970, 3, 1)),
            (365, (1971, 1, 1)),
            (789, (1972, 2, 29)),    // a leap day
            (11_016, (2000, 2, 29)), // a leap day of a year divisible by 400
            (11_017, (2000, 3, 1)),
            (19_782, (2024, 2, 29)),
            (20_454, (2026, 1, 1)),
            (20_790, (2026, 12, 3)),
            (47_541, (2100, 3, 1)), // 2100 is not a leap year: 28 February is the day before
            (47_540, (2100, 2, 28)),
            (-1, (1969, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), date, "day {days}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), days, "{date:?}");
        }
    }

    #[test]
    fn month_bounds_of_known_times() {
        let day = |y, m, d| days_from_civil(y, m, d) as u64 * NS_PER_DAY;
        // 2024-02-29T23:59:59.999999999Z: February of a leap year, 29 days.
        let t = day(2024, 3, 1) - 1;
        assert_eq!(month_bounds_ns(t), (day(2024, 2, 1), day(2024, 3, 1)));
        assert_eq!(month_bounds_ns(day(2024, 3, 1)), (day(2024, 3, 1), day(2024, 4, 1)));
        // December rolls over to January of the next year.
        assert_eq!(
            month_bounds_ns(day(2026, 12, 31) + 5),
            (day(2026, 12, 1), day(2027, 1, 1))
        );
        assert_eq!(month_bounds_ns(0), (0, 31 * NS_PER_DAY));
        // 1_800_000_000 s is 2027-01-15T08:00:00Z.
        assert_eq!(
            month_bounds_ns(1_800_000_000 * 1_000_000_000),
            (day(2027, 1, 1), day(2027, 2, 1))
        );
        // The last month of the u64 range ends past it.
        assert_eq!(month_bounds_ns(u64::MAX).1, u64::MAX);
    }

    proptest! {
        /// The fast algorithms agree with counting days, and are inverse to each other.
        #[test]
        fn agrees_with_counting_and_round_trips(days in 0i64..200_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_by_counting(y, m, d), days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        /// A time is inside its month, which starts on a first of the month at midnight
        /// and ends where the next month starts.
        #[test]
        fn a_time_is_inside_its_month(now_ns in 0u64..(1 << 63)) {
            let (start, next) = month_bounds_ns(now_ns);
            prop_assert!(start <= now_ns && now_ns < next);
            prop_assert_eq!(start % NS_PER_DAY, 0);
            prop_assert_eq!(civil_from_days((start / NS_PER_DAY) as i64).2, 1);
            prop_assert_eq!(civil_from_days((next / NS_PER_DAY) as i64).2, 1);
            prop_assert_eq!(month_bounds_ns(next).0, next);
            prop_assert!((28..=31).contains(&((next - start) / NS_PER_DAY)));
        }
    }
}
