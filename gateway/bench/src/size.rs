//! Human byte sizes for the CLI ("1GiB", "64MiB", "4KiB", "1000") and for the table.

use crate::BenchError;

/// Parses a byte size: a number with an optional binary (KiB, MiB, GiB, TiB) or decimal
/// (KB, MB, GB, TB) suffix, case-insensitive; a bare number or a `B` suffix means bytes.
pub fn parse_size(text: &str) -> Result<u64, BenchError> {
    let invalid = || BenchError::InvalidSize(text.to_owned());
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

/// Formats a byte count with the largest binary unit that divides it exactly, so the table
/// shows "1 GiB" and "4 KiB" exactly as they were asked for, and odd sizes stay in bytes.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (name, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

/// A clap value parser, so flags such as `--size 1GiB` are checked when parsed.
pub fn size_arg(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_suffixes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("4kib").unwrap(), 4096);
        assert_eq!(parse_size("4 KiB").unwrap(), 4096);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("7B").unwrap(), 7);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        for bad in ["", "GiB", "1.5GiB", "12XB", "-1", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_exact_units() {
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(1500), "1500 B");
        assert_eq!(format_size(0), "0 B");
    }
}
