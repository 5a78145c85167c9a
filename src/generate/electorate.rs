//! Building one voter from `(seed, index)`.
//!
//! Every voter has its own ChaCha8 stream (stream number = index) under a key
//! derived from the seed, so voter `i` needs nothing from voters `0..i`:
//! threads can split the range and still produce identical bytes. ChaCha's
//! output is specified bit for bit, unlike `StdRng`, and every draw below is an
//! integer draw from a fixed-width range, so the result is the same on any
//! platform. Changing the order or the number of draws changes every
//! electorate; the golden test in `mod.rs` is there to catch that.

use std::fmt::Write as _;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::names::{
    rare_last_names, COMMON_LAST, EMAIL_DOMAINS, FEMALE_FIRST, MALE_FIRST, STREET_NAMES,
    STREET_SUFFIXES, UNISEX_FIRST,
};
use crate::model::{Gender, Voter};
use crate::states::{self, UsState};

/// Ages are counted on this day (election day 2026), never on the wall
/// clock, so an electorate does not change with the date it is generated on.
pub const REFERENCE_DATE: (i32, u32, u32) = (2026, 11, 3);

/// Mixed into the key so that another stage seeding ChaCha8 from the same
/// user seed (the ballot simulator, say) does not replay these streams.
const DOMAIN: &[u8; 8] = b"voters/1";

/// US adult population by age band (2020 census, thousands): (first age,
/// last age, weight). Ages are uniform within a band.
const AGE_BANDS: &[(u32, u32, u32)] = &[
    (18, 24, 30_000),
    (25, 29, 22_500),
    (30, 34, 22_500),
    (35, 39, 21_700),
    (40, 44, 20_800),
    (45, 49, 19_900),
    (50, 54, 20_700),
    (55, 59, 21_600),
    (60, 64, 20_700),
    (65, 69, 17_500),
    (70, 74, 14_100),
    (75, 79, 9_700),
    (80, 84, 6_300),
    (85, 89, 3_900),
    (90, 95, 1_800),
];

/// The per-seed part of generation, computed once and shared by every voter.
#[derive(Clone)]
pub(crate) struct Electorate {
    key: [u8; 32],
}

impl Electorate {
    pub(crate) fn new(seed: u64) -> Self {
        let mut key = ChaCha8Rng::seed_from_u64(seed).get_seed();
        for (k, d) in key.iter_mut().zip(DOMAIN) {
            *k ^= d;
        }
        Electorate { key }
    }

    pub(crate) fn voter(&self, index: u64) -> Voter {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(index);
        build(&mut rng, index)
    }
}

fn build(rng: &mut ChaCha8Rng, index: u64) -> Voter {
    let voter_id = voter_id(index, rng.next_u64());

    let gender = match rng.random_range(0..1000u32) {
        0..505 => Gender::Female,
        505..990 => Gender::Male,
        _ => Gender::Other,
    };
    let first = pick(
        rng,
        match gender {
            Gender::Female => FEMALE_FIRST,
            Gender::Male => MALE_FIRST,
            Gender::Other => UNISEX_FIRST,
        },
    );
    let last = if rng.random_ratio(4, 5) {
        pick(rng, COMMON_LAST)
    } else {
        pick(rng, rare_last_names())
    };
    let mut voter_name = String::with_capacity(first.len() + 1 + last.len());
    voter_name.push_str(first);
    voter_name.push(' ');
    voter_name.push_str(last);

    let age = sample_age(rng);
    let date_of_birth = format_date(birth_day(rng, age));

    let state = states::state_at(rng.random_range(0..states::total_population_k()));
    // The smaller of two draws favours the first (largest) cities.
    let n = state.cities.len() as u32;
    let city = rng.random_range(0..n).min(rng.random_range(0..n)) as usize;

    let number = if rng.random_ratio(1, 8) {
        rng.random_range(1..100u32)
    } else {
        rng.random_range(100..10_000u32)
    };
    let street_name = pick(rng, STREET_NAMES);
    let suffix = pick(rng, STREET_SUFFIXES);
    let mut address_street = String::with_capacity(24);
    let _ = write!(address_street, "{number} {street_name} {suffix}");

    let mut address_postcode = String::with_capacity(5);
    address_postcode.push_str(state.zip_prefixes[city]);
    push_digits(&mut address_postcode, rng.random_range(0..100u32), 2);

    let email = email(rng, first, last);
    let area = nxx(rng);
    let phone_number = phone(rng, area);
    // Most people keep a cell number from the same area.
    let cell_area = if rng.random_ratio(3, 4) {
        area
    } else {
        nxx(rng)
    };
    let cell_number = phone(rng, cell_area);

    let mut picture = String::with_capacity(56);
    picture.push_str("/avatars/voter/");
    picture.push_str(&voter_id);
    picture.push_str(".svg");

    Voter {
        registration_number: registration_number(state, index),
        voter_id,
        voter_name,
        date_of_birth,
        gender,
        nationality: String::from("US"),
        address_street,
        address_city: state.cities[city].to_owned(),
        address_state: state.name.to_owned(),
        address_country: String::from("United States"),
        address_postcode,
        email,
        phone_number,
        cell_number,
        picture,
        registered_age: age,
    }
}

fn pick(rng: &mut ChaCha8Rng, list: &'static [&'static str]) -> &'static str {
    list[rng.random_range(0..list.len() as u32) as usize]
}

/// 8-4-4-4-12 lowercase hex: the index big-endian in the first 16 digits,
/// so ids sort in generation order and B-tree inserts append; 64 random bits
/// after it tell electorates of different seeds apart.
pub(crate) fn voter_id(index: u64, random: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[8..].copy_from_slice(&random.to_be_bytes());
    let mut id = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

/// `CA-0000012345-7`: unique because the digits are the index (the state
/// code is only for readers); the last digit is a Luhn check digit.
fn registration_number(state: &UsState, index: u64) -> String {
    let mut s = String::with_capacity(16);
    s.push_str(state.code);
    s.push('-');
    let start = s.len();
    let _ = write!(s, "{index:010}");
    let check = luhn_check_digit(&s.as_bytes()[start..]);
    s.push('-');
    s.push(char::from(b'0' + check));
    s
}

pub(crate) fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn sample_age(rng: &mut ChaCha8Rng) -> u32 {
    let total: u32 = AGE_BANDS.iter().map(|b| b.2).sum();
    let mut point = rng.random_range(0..total);
    for &(lo, hi, weight) in AGE_BANDS {
        if point < weight {
            return rng.random_range(lo..=hi);
        }
        point -= weight;
    }
    AGE_BANDS[0].0
}

/// A birthday, in days since 1970-01-01, uniform over the year of dates on
/// which someone is exactly `age` on [`REFERENCE_DATE`].
fn birth_day(rng: &mut ChaCha8Rng, age: u32) -> i64 {
    let (y, m, d) = REFERENCE_DATE;
    let age = age as i32;
    // Born the day after the reference date, `age + 1` years earlier: still
    // `age` on the reference date. Born on it, `age` years earlier: just `age`.
    let earliest = days_from_civil(y - age - 1, m, d) + 1;
    let latest = days_from_civil(y - age, m, d);
    earliest + i64::from(rng.random_range(0..=(latest - earliest) as u32))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm): branch-free, no Option to unwrap in the hot loop.
pub(crate) fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(if m <= 2 { y - 1 } else { y });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let (m, d) = (i64::from(m), i64::from(d));
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(10);
    push_digits(&mut s, y.max(0) as u32, 4);
    s.push('-');
    push_digits(&mut s, m, 2);
    s.push('-');
    push_digits(&mut s, d, 2);
    s
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(s: &mut String, n: u32, width: u32) {
    for p in (0..width).rev() {
        let digit = (n / 10u32.pow(p)) % 10;
        s.push(char::from(b'0' + digit as u8));
    }
}

/// `first.last42@example.com` and the other usual shapes, lowercase ASCII.
fn email(rng: &mut ChaCha8Rng, first: &str, last: &str) -> String {
    let mut s = String::with_capacity(first.len() + last.len() + 20);
    let number = rng.random_range(1..1000u32);
    match rng.random_range(0..6u32) {
        0 => {
            push_local(&mut s, first);
            s.push('.');
            push_local(&mut s, last);
        }
        1 => {
            push_local(&mut s, first);
            s.push('.');
            push_local(&mut s, last);
            let _ = write!(s, "{}", number % 100);
        }
        2 => {
            push_local(&mut s, first);
            push_local(&mut s, last);
            let _ = write!(s, "{number}");
        }
        3 => {
            let initial = first
                .char_indices()
                .nth(1)
                .map_or(first, |(i, _)| &first[..i]);
            push_local(&mut s, initial);
            push_local(&mut s, last);
            let _ = write!(s, "{number}");
        }
        4 => {
            push_local(&mut s, first);
            s.push('_');
            push_local(&mut s, last);
        }
        _ => {
            push_local(&mut s, last);
            s.push('.');
            push_local(&mut s, first);
        }
    }
    s.push('@');
    s.push_str(pick(rng, EMAIL_DOMAINS));
    s
}

/// Keeps only what a mailbox name can hold unquoted: "O'Hara" -> "ohara".
fn push_local(s: &mut String, part: &str) {
    s.extend(
        part.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase()),
    );
}

/// A NANP area code or exchange: first digit 2-9, never an N11 service code.
fn nxx(rng: &mut ChaCha8Rng) -> u32 {
    loop {
        let n = rng.random_range(200..1000u32);
        if n % 100 != 11 {
            return n;
        }
    }
}

fn phone(rng: &mut ChaCha8Rng, area: u32) -> String {
    let exchange = nxx(rng);
    let line = rng.random_range(0..10_000u32);
    let mut s = String::with_capacity(14);
    s.push('(');
    push_digits(&mut s, area, 3);
    s.push_str(") ");
    push_digits(&mut s, exchange, 3);
    s.push('-');
    push_digits(&mut s, line, 4);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_day_conversions_agree_with_chrono() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        for days in (-40_000i64..40_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            let expected = epoch + chrono::Duration::days(days);
            assert_eq!(
                chrono::NaiveDate::from_ymd_opt(y, m, d),
                Some(expected),
                "{days}"
            );
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn luhn_matches_known_values() {
        // 7992739871 is the textbook example; its check digit is 3.
        assert_eq!(luhn_check_digit(b"7992739871"), 3);
        assert_eq!(luhn_check_digit(b"0000000000"), 0);
    }

    #[test]
    fn voter_id_layout() {
        let id = voter_id(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        assert_eq!(id, "01234567-89ab-cdef-fedc-ba9876543210");
    }

    #[test]
    fn email_local_part_is_plain_ascii() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let e = email(&mut rng, "Zoë", "O'Hara");
            let (local, domain) = e.split_once('@').expect("has @");
            assert!(local
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'));
            assert!(!local.contains('\''), "{e}");
            assert!(EMAIL_DOMAINS.contains(&domain), "{e}");
        }
    }
}
