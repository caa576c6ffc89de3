//! How the benchmark tables write a figure, take the median of one over several runs, and note
//! the runs that failed: the standard table ([`crate::report`]) and the fleet table
//! ([`crate::fleet`]) sit in one document and must read alike.

use crate::scenario::median;

/// A count rounded to a whole number, with thousands separators: `500,000`.
pub fn count(value: f64) -> String {
    let digits = (value.round() as u64).to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A figure to about three significant digits (`250`, `12.5`, `0.75`) followed by `unit`;
/// `–` when there is none.
pub fn figure(value: Option<f64>, unit: &str) -> String {
    match value {
        Some(value) if value >= 100.0 => format!("{value:.0}{unit}"),
        Some(value) if value >= 10.0 => format!("{value:.1}{unit}"),
        Some(value) => format!("{value:.2}{unit}"),
        None => "–".into(),
    }
}

/// The median of `field` over the runs that have it; `None` if none has.
pub fn median_of<R>(reports: &[R], field: impl Fn(&R) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = reports.iter().filter_map(field).collect();
    median(&mut values)
}

/// `1 of 3 runs FAILED (<why the first failed>)` when any failed (`runs` is how many did
/// not); a `|` in the reason would break the table's row.
pub fn failed_runs(failures: &[String], runs: usize) -> Option<String> {
    let first = failures.first()?;
    Some(format!(
        "{} of {} runs FAILED ({})",
        failures.len(),
        failures.len() + runs,
        first.replace('|', "/")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(500_000.4), "500,000");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1_000.0), "1,000");
    }

    #[test]
    fn figures_keep_about_three_significant_digits() {
        assert_eq!(figure(Some(250.4), " ms"), "250 ms");
        assert_eq!(figure(Some(12.46), ""), "12.5");
        assert_eq!(figure(Some(0.754), " s"), "0.75 s");
        assert_eq!(figure(None, " ms"), "–");
    }

    #[test]
    fn failed_runs_are_noted_with_the_first_reason() {
        assert_eq!(failed_runs(&[], 3), None);
        assert_eq!(
            failed_runs(&["a | b".to_owned(), "c".to_owned()], 1).as_deref(),
            Some("2 of 3 runs FAILED (a / b)")
        );
    }
}
