//! HTTP dates.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

// ----- dates -----------------------------------------------------------------

/// Formats a time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`);
/// Tornado's `format_timestamp`.
pub fn format_timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut buf = [0u8; 29];
    write_http_date(secs, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub(crate) fn write_http_date(secs: u64, out: &mut [u8; 29]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(d as u64));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    out[11] = b' ';
    let y = y as u64;
    out[12..14].copy_from_slice(&two(y / 100));
    out[14..16].copy_from_slice(&two(y));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(hh));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(mm));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(ss));
    out[25..29].copy_from_slice(b" GMT");
}

/// The current HTTP date, formatted at most once per second per thread: the
/// `Date` header of every response costs a clock read and a copy.
///
/// ```
/// let mut out = Vec::new();
/// squall::httputil::HttpDate::write_now(&mut out);
/// assert_eq!(out.len(), 29);
/// assert!(out.ends_with(b" GMT"));
/// ```
pub struct HttpDate {
    secs: u64,
    text: [u8; 29],
}

thread_local! {
    static DATE: RefCell<HttpDate> = const { RefCell::new(HttpDate { secs: u64::MAX, text: [0; 29] }) };
}

impl HttpDate {
    /// Appends the current date (29 bytes) to `out`.
    pub fn write_now(out: &mut Vec<u8>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        DATE.with(|cell| {
            let mut date = cell.borrow_mut();
            if date.secs != now {
                date.secs = now;
                write_http_date(now, &mut date.text);
            }
            out.extend_from_slice(&date.text);
        });
    }
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(format_timestamp(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            format_timestamp(UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day 2000
        assert_eq!(format_timestamp(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
