//! Dates as copies of the Kaggle file write them: the original `YYYY-MM-DD` and what an Excel
//! re-save makes of it (`M/D/YYYY`, with or without a time of day).

use time::{Date, Month};

/// A date as copies of the file write it: `YYYY-MM-DD` (the original), `M/D/YYYY` or
/// `MM/DD/YYYY` (US order, as Excel writes it), each optionally followed by a time after a
/// space or a `T` (`2019-12-02 00:00:00`, `12/2/2019 0:00`, `2019-12-02T00:00:00Z`), which is
/// ignored. Two-digit years and day-first orders are not read: they are ambiguous.
pub fn parse_csv_date(text: &str) -> Option<Date> {
    let text = text.trim();
    let (date, time) = match text.find([' ', 'T']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    if time.is_some_and(|time| !is_time_of_day(time)) {
        return None;
    }
    let (year, month, day) = if date.contains('-') {
        let mut parts = date.split('-');
        let parts = (parts.next()?, parts.next()?, parts.next()?, parts.next());
        match parts {
            (year, month, day, None) => (year, month, day),
            _ => return None,
        }
    } else {
        let mut parts = date.split('/');
        let parts = (parts.next()?, parts.next()?, parts.next()?, parts.next());
        match parts {
            (month, day, year, None) => (year, month, day),
            _ => return None,
        }
    };
    if year.len() != 4 {
        return None;
    }
    let year = digits(year, 4)? as i32;
    let month = Month::try_from(digits(month, 2)? as u8).ok()?;
    Date::from_calendar_date(year, month, digits(day, 2)? as u8).ok()
}

/// `H:MM`, `HH:MM:SS` or `HH:MM:SS.fff`, optionally followed by `Z`, `AM` or `PM`.
fn is_time_of_day(text: &str) -> bool {
    let text = text.trim();
    let text = ["Z", "AM", "PM", "am", "pm"]
        .iter()
        .find_map(|suffix| text.strip_suffix(suffix))
        .unwrap_or(text)
        .trim_end();
    let mut parts = text.split(':');
    let hour = parts.next().and_then(|hour| digits(hour, 2));
    let minute = parts.next().and_then(|minute| digits(minute, 2));
    let second_ok = match parts.next() {
        None => true,
        Some(second) => {
            let (whole, fraction) = second.split_once('.').unwrap_or((second, "0"));
            digits(whole, 2).is_some_and(|s| s < 61)
                && fraction.bytes().all(|b| b.is_ascii_digit())
                && !fraction.is_empty()
        }
    };
    matches!((hour, minute), (Some(h), Some(m)) if h < 24 && m < 60)
        && second_ok
        && parts.next().is_none()
}

/// 1 to `max_len` ASCII digits as a number.
fn digits(text: &str, max_len: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn dates_are_read_in_the_forms_copies_use() {
        let december = Some(date!(2019 - 12 - 02));
        for text in [
            "2019-12-02",
            "2019-12-2",
            "12/2/2019",
            "12/02/2019",
            " 12/2/2019 ",
            "2019-12-02 00:00:00",
            "2019-12-02T00:00:00",
            "2019-12-02T00:00:00Z",
            "2019-12-02T13:45:10.250",
            "12/2/2019 0:00",
            "12/2/2019 12:00 AM",
        ] {
            assert_eq!(parse_csv_date(text), december, "{text}");
        }
        for text in [
            "2019-13-01",
            "2/30/2019",
            "12/2/19",
            "19-12-02",
            "2019/12/02",
            "12/2/2019/1",
            "2019-12-02 noon",
            "2019-12-02 25:00",
            "12-2-2019",
            "",
            "today",
        ] {
            assert_eq!(parse_csv_date(text), None, "{text}");
        }
    }
}
