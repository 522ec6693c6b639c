//! Kubernetes resource quantities (`1Gi`, `500M`, `1.5Ti`) as whole bytes, so the planner can
//! tell whether a claim is smaller than `spec.storage.size` (k8s-openapi keeps them as text).

/// The quantity in bytes, rounded up; None for a form this parser does not read (exponents,
/// negative numbers, an unknown suffix).
pub fn bytes(quantity: &str) -> Option<u128> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (multiplier, divisor): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (1000u128.pow(2), 1),
        "G" => (1000u128.pow(3), 1),
        "T" => (1000u128.pow(4), 1),
        "P" => (1000u128.pow(5), 1),
        "E" => (1000u128.pow(6), 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || fraction.len() > 18 {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
    let numerator = digits.checked_mul(multiplier)?;
    let denominator = scale.checked_mul(divisor)?;
    Some(numerator.div_ceil(denominator))
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn binary_and_decimal_suffixes() {
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("2Gi"), Some(2 << 30));
        assert_eq!(bytes("1024Mi"), bytes("1Gi"));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1073741824"), Some(1 << 30));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("500k"), Some(500_000));
        assert_eq!(bytes("1500m"), Some(2), "rounded up");
    }

    #[test]
    fn forms_it_does_not_read() {
        for q in ["", "Gi", "1e3", "-1Gi", "1.2.3Gi", "1 GB", "1gi"] {
            assert_eq!(bytes(q), None, "{q:?}");
        }
    }
}
