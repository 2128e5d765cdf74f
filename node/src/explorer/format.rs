//! How numbers, amounts, times and hashes read on the pages.

use lode_core::COIN;

/// Base units as coins, without trailing zeros: `150000000` → `1.5`.
pub fn coins(units: u64) -> String {
    let whole = units / COIN;
    let frac = units % COIN;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:08}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A signed amount of base units as coins with its sign: `+1.5`, `-0.1`.
pub fn signed_coins(units: i128) -> String {
    let magnitude = u64::try_from(units.unsigned_abs()).unwrap_or(u64::MAX);
    if units < 0 {
        format!("-{}", coins(magnitude))
    } else {
        format!("+{}", coins(magnitude))
    }
}

/// Bytes with a binary unit: `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A large number with an SI prefix: `12.3 M`.
pub fn si(v: f64) -> String {
    let (num, prefix) = si_parts(v);
    format!("{num} {prefix}").trim_end().to_string()
}

/// The number and its SI prefix.
fn si_parts(v: f64) -> (String, &'static str) {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    if !v.is_finite() || v <= 0.0 {
        return ("0".into(), "");
    }
    let mut v = v;
    let mut p = 0;
    while v >= 1000.0 && p + 1 < PREFIXES.len() {
        v /= 1000.0;
        p += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    (format!("{v:.digits$}"), PREFIXES[p])
}

/// A hash rate: `12.3 MH/s`.
pub fn hashrate(v: f64) -> String {
    let (num, prefix) = si_parts(v);
    format!("{num} {prefix}H/s")
}

/// A difficulty, readable at any size.
pub fn difficulty(d: f64) -> String {
    if d < 1000.0 {
        format!("{d:.3}")
    } else {
        si(d)
    }
}

/// Unix seconds as `2024-05-01 12:00:00 UTC`.
pub fn time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 as a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`): no date library for one conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// How long ago `secs` was, compared with `now`: `42 s ago`, `3 min ago`.
pub fn ago(secs: u64, now: u64) -> String {
    let d = now.saturating_sub(secs);
    match d {
        0..=59 => format!("{d} s ago"),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=86_399 => format!("{} h ago", d / 3600),
        _ => format!("{} d ago", d / 86_400),
    }
}

/// The first and last characters of a long id: `00ab12cd…9f8e`.
pub fn short(id: &str) -> String {
    if id.len() <= 20 {
        return id.to_string();
    }
    format!("{}…{}", &id[..10], &id[id.len() - 6..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_coins() {
        assert_eq!(coins(0), "0");
        assert_eq!(coins(5_000_000_000), "50");
        assert_eq!(coins(150_000_000), "1.5");
        assert_eq!(coins(1), "0.00000001");
        assert_eq!(signed_coins(-10_000), "-0.0001");
        assert_eq!(signed_coins(100_000_000), "+1");
    }

    #[test]
    fn dates_match_known_days() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(hashrate(12_300_000.0), "12.3 MH/s");
        assert_eq!(hashrate(0.0), "0 H/s");
        assert_eq!(short("0123456789abcdef0123456789"), "0123456789…456789");
    }
}
