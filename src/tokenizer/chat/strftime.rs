//! `strftime_now(format)` for chat templates (Llama 3.x templates print today's
//! date). Hand-written because the crate has no date formatting of its own and the
//! few conversions templates use do not justify a calendar dependency. Times are
//! UTC.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// The year (proleptic Gregorian).
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    /// 0..=23
    pub hour: u32,
    /// 0..=59
    pub minute: u32,
    /// 0..=59
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// 1..=366
    pub yday: u32,
}

impl Civil {
    /// The UTC time `secs` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Days to civil date (proleptic Gregorian), era-based.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let before: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = before[(month - 1) as usize] + day + u32::from(leap && month > 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday,
        }
    }

    /// Now, in UTC.
    pub fn now() -> Civil {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Civil::from_unix(secs)
    }
}

/// Formats `t` with the C/Python `strftime` conversions templates use
/// (`%Y %y %m %d %e %B %b %h %A %a %H %I %M %S %p %j %F %T %D %%`); any other
/// conversion is kept as written.
pub fn strftime(format: &str, t: Civil) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let month = MONTHS[(t.month - 1) as usize];
        let day = DAYS[t.weekday as usize];
        let hour12 = if t.hour.is_multiple_of(12) {
            12
        } else {
            t.hour % 12
        };
        match spec {
            'Y' => out += &t.year.to_string(),
            'y' => out += &format!("{:02}", t.year.rem_euclid(100)),
            'm' => out += &format!("{:02}", t.month),
            'd' => out += &format!("{:02}", t.day),
            'e' => out += &format!("{:2}", t.day),
            'B' => out += month,
            'b' | 'h' => out += &month[..3],
            'A' => out += day,
            'a' => out += &day[..3],
            'H' => out += &format!("{:02}", t.hour),
            'I' => out += &format!("{hour12:02}"),
            'M' => out += &format!("{:02}", t.minute),
            'S' => out += &format!("{:02}", t.second),
            'p' => out += if t.hour < 12 { "AM" } else { "PM" },
            'j' => out += &format!("{:03}", t.yday),
            'F' => out += &format!("{}-{:02}-{:02}", t.year, t.month, t.day),
            'T' => out += &format!("{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
            'D' => out += &format!("{:02}/{:02}/{:02}", t.month, t.day, t.year.rem_euclid(100)),
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}
