//! Parameter values as text and back, exactly: what a host shows (CLAP `value_to_text`, VST3
//! `getParamStringByValue`) parses back (`text_to_value`, `getParamValueByString`) to the value
//! it shows, and a value the user chose shows as chosen.
//!
//! nice-plug's own formatting rounds to a fixed number of decimals (Tokens per Beat 0.25 showed
//! "0.2", 0.75 "0.8"), so no one could tell which grid was set. Here every number shows as many
//! decimals as its parameter resolves, trailing zeros dropped, and fractions of a beat as
//! fractions ("1/4", "3/4", "1 3/4"). Hosts hand a value through its normalised form, which
//! moves a float's last bits (-0.4 comes back as -0.39999998); the decimals are few enough that
//! this never shows, and many enough that every value a user types or steps to shows as typed.
//!
//! The parsers take the text with or without its unit (CLAP's text carries the unit, VST3's
//! does not) and any surrounding spaces.

use std::sync::Arc;

/// A value → text callback, as nice-plug takes it.
pub type ToText = Arc<dyn Fn(f32) -> String + Send + Sync>;
/// A text → value callback, as nice-plug takes it.
pub type FromText = Arc<dyn Fn(&str) -> Option<f32> + Send + Sync>;

/// `value` with at most `decimals` decimals, trailing zeros (and a bare point) dropped; never
/// "-0".
pub fn decimal(value: f32, decimals: usize) -> String {
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" {
        text = String::from("0");
    }
    text
}

/// The number a text starts with: the first word, so `"0.4 s"`, `"4 tok/s"` and `"0.4"` all
/// read 0.4. Refuses what is not finite.
fn leading_number(text: &str) -> Option<f32> {
    let word = text.split_whitespace().next()?;
    let value: f32 = word.parse().ok()?;
    value.is_finite().then_some(value)
}

/// A plain number with at most `decimals` decimals (see [`decimal`]).
pub fn v2s_decimal(decimals: usize) -> ToText {
    Arc::new(move |value| decimal(value, decimals))
}

/// Parses what [`v2s_decimal`] writes, with or without a unit after the number.
pub fn s2v_decimal() -> FromText {
    Arc::new(leading_number)
}

/// An amount of 0–1 shown in percent with at most `decimals` decimals; the unit (" %") is the
/// parameter's.
pub fn v2s_percent(decimals: usize) -> ToText {
    Arc::new(move |value| decimal(value * 100.0, decimals))
}

/// Parses "60", "60 %" or "60%" to 0.6.
pub fn s2v_percent() -> FromText {
    Arc::new(|text| {
        let number = text.trim().trim_end_matches('%').trim();
        let value: f32 = number.parse().ok()?;
        value.is_finite().then_some(value / 100.0)
    })
}

/// A linear gain shown in dB with at most `decimals` decimals, "-inf" for silence only (nice-plug
/// shows everything below -100 dB as "-inf", and reads "-inf" as silence, so a quiet setting
/// read back as silence); the unit (" dB") is the parameter's.
pub fn v2s_gain_db(decimals: usize) -> ToText {
    Arc::new(move |gain| {
        if gain > 0.0 {
            decimal(20.0 * gain.log10(), decimals)
        } else {
            String::from("-inf")
        }
    })
}

/// Parses dB ("-6", "-6 dB", "-6dB", "-inf", "-inf dB") to a linear gain.
pub fn s2v_gain_db() -> FromText {
    Arc::new(|text| {
        let word = text.split_whitespace().next()?;
        let number = word.trim_end_matches(['d', 'D', 'b', 'B']);
        if number.eq_ignore_ascii_case("-inf") {
            return Some(0.0);
        }
        let db: f32 = number.parse().ok()?;
        db.is_finite().then(|| 10.0_f32.powf(db / 20.0))
    })
}

/// Fractions of `1 / denominator` as a musician writes them: "1/4", "1/2", "3/4", "1",
/// "1 1/4" … (reduced). A value off that grid shows as a decimal with six decimals at most.
pub fn v2s_fraction(denominator: u32) -> ToText {
    Arc::new(move |value| fraction(value, denominator))
}

fn fraction(value: f32, denominator: u32) -> String {
    let scaled = value * denominator as f32;
    let parts = scaled.round();
    if (scaled - parts).abs() > 1e-3 || !(0.0..=1e6).contains(&parts) {
        return decimal(value, 6);
    }
    let parts = parts as u32;
    let (whole, rest) = (parts / denominator, parts % denominator);
    if rest == 0 {
        return whole.to_string();
    }
    let common = gcd(rest, denominator);
    let (numerator, denominator) = (rest / common, denominator / common);
    if whole == 0 {
        format!("{numerator}/{denominator}")
    } else {
        format!("{whole} {numerator}/{denominator}")
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Parses what [`v2s_fraction`] writes ("3/4", "1 3/4", "2"), improper fractions ("7/4") and
/// decimals ("1.75").
pub fn s2v_fraction() -> FromText {
    Arc::new(parse_fraction)
}

fn parse_fraction(text: &str) -> Option<f32> {
    let ratio = |word: &str| -> Option<f32> {
        match word.split_once('/') {
            Some((numerator, denominator)) => {
                let numerator: f32 = numerator.trim().parse().ok()?;
                let denominator: f32 = denominator.trim().parse().ok()?;
                (denominator != 0.0).then(|| numerator / denominator)
            }
            None => word.parse().ok(),
        }
    };
    let mut words = text.split_whitespace();
    let first = ratio(words.next()?)?;
    let value = match words.next() {
        None => first,
        // "1 3/4": a whole number and a proper fraction.
        Some(second) if !second.contains('/') => return None,
        Some(second) => {
            let part = ratio(second)?;
            if first.fract() != 0.0 || first < 0.0 || !(0.0..1.0).contains(&part) {
                return None;
            }
            first + part
        }
    };
    if words.next().is_some() {
        return None;
    }
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beat_fractions_show_and_parse_exactly() {
        let show = v2s_fraction(4);
        let parse = s2v_fraction();
        for (value, text) in [
            (0.25, "1/4"),
            (0.5, "1/2"),
            (0.75, "3/4"),
            (1.0, "1"),
            (1.25, "1 1/4"),
            (1.75, "1 3/4"),
            (2.0, "2"),
            (3.5, "3 1/2"),
            (4.0, "4"),
        ] {
            assert_eq!(show(value), text, "{value}");
            assert_eq!(parse(text), Some(value), "{text}");
        }
        for (text, value) in [
            ("7/4", 1.75),
            ("1.75", 1.75),
            (" 0.25 ", 0.25),
            ("2.0", 2.0),
        ] {
            assert_eq!(parse(text), Some(value), "{text}");
        }
        for text in ["", "1/0", "a/4", "1 2", "1 5/4", "1 3/4 x", "1/2 1/4"] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        assert_eq!(show(0.3), "0.3");
    }

    #[test]
    fn decimals_drop_trailing_zeros_and_hide_normalisation_noise() {
        assert_eq!(decimal(-0.399_999_98, 4), "-0.4");
        assert_eq!(decimal(0.0, 4), "0");
        assert_eq!(decimal(-0.000_01, 4), "0");
        assert_eq!(decimal(16.0, 1), "16");
        assert_eq!(decimal(0.123_45, 4), "0.1235");
        assert_eq!(s2v_decimal()("0.4 s"), Some(0.4));
        assert_eq!(s2v_decimal()("4.3 tok/s"), Some(4.3));
        assert_eq!(s2v_decimal()("nan"), None);
        assert_eq!(v2s_percent(2)(0.6), "60");
        assert_eq!(v2s_percent(2)(0.125), "12.5");
        assert_eq!(s2v_percent()("12.5 %"), Some(0.125));
        assert_eq!(s2v_percent()("60%"), Some(0.6));
        assert_eq!(v2s_gain_db(2)(1.0), "0");
        assert_eq!(v2s_gain_db(2)(0.0), "-inf");
        assert_eq!(v2s_gain_db(2)(1e-6), "-120");
        let quiet = s2v_gain_db()("-120 dB").unwrap();
        assert!((quiet / 1e-6 - 1.0).abs() < 1e-5, "{quiet}");
        assert_eq!(s2v_gain_db()("-inf dB"), Some(0.0));
        assert_eq!(s2v_gain_db()("-inf"), Some(0.0));
        let gain = s2v_gain_db()("-3.25 dB").unwrap();
        assert_eq!(v2s_gain_db(2)(gain), "-3.25");
        assert_eq!(s2v_gain_db()("-6dB"), s2v_gain_db()("-6"));
    }
}
