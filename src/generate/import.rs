//! Loading a real registry instead of generating one: a CSV with the
//! `voters` table's columns, or a saved randomuser.me API response (what the
//! original tutorial fetched). Every problem names the line or record and the
//! field, so a 100,000-row file can be fixed without guesswork.

use std::collections::HashMap;
use std::io::{Read, Write};

use chrono::NaiveDate;
use serde_json::Value;

use crate::edge::{self, Kind, TextError};
use crate::model::{Gender, Voter};

/// The CSV header: the original's `voters` columns, in its order.
pub const CSV_COLUMNS: [&str; 16] = crate::model::VOTER_COLUMNS;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("CSV header has no {0:?} column")]
    MissingColumn(&'static str),
    #[error("CSV line {line}: {detail}")]
    Csv { line: u64, detail: String },
    #[error("CSV line {line}: {field} {value:?} {problem}")]
    BadCsvField {
        line: u64,
        field: &'static str,
        value: String,
        problem: &'static str,
    },
    /// A field that breaks the edge's rules (NUL, too long, an empty id).
    #[error("{at}: {error}")]
    BadText { at: String, error: TextError },
    #[error("randomuser JSON is malformed: {0}")]
    Json(#[source] serde_json::Error),
    #[error("randomuser JSON: {path} {problem}")]
    BadJsonField { path: String, problem: String },
    #[error("{at}: duplicate voter_id {voter_id:?} (first at {first_at})")]
    DuplicateVoterId {
        voter_id: String,
        at: String,
        first_at: String,
    },
    #[error("writing CSV: {0}")]
    Write(#[source] csv::Error),
    #[error("writing CSV: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a CSV whose header names (in any order, extra columns ignored) the
/// [`CSV_COLUMNS`]. Text is kept verbatim; `date_of_birth` may also be a
/// full ISO timestamp and is cut to its date; unknown genders become `Other`.
pub fn from_csv(reader: impl Read) -> Result<Vec<Voter>, ImportError> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(reader);
    let headers = rdr.headers().map_err(csv_error)?.clone();
    let mut col = [0usize; CSV_COLUMNS.len()];
    for (slot, name) in col.iter_mut().zip(CSV_COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or(ImportError::MissingColumn(name))?;
    }

    let mut voters = Vec::new();
    let mut seen = Seen::default();
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        // The reader rejects rows of unequal length, so every index exists.
        let get = |i: usize| record.get(col[i]).unwrap_or_default();
        let bad = |i: usize, problem| ImportError::BadCsvField {
            line,
            field: CSV_COLUMNS[i],
            value: get(i).to_owned(),
            problem,
        };

        let voter_id = get(0);
        if voter_id.trim().is_empty() {
            return Err(bad(0, "is empty"));
        }
        let date_of_birth =
            normalize_date(get(2)).ok_or_else(|| bad(2, "is not a date (YYYY-MM-DD)"))?;
        let registered_age = get(15)
            .trim()
            .parse::<u32>()
            .map_err(|_| bad(15, "is not a non-negative integer"))?;
        seen.check(voter_id, line, |l| format!("CSV line {l}"))?;

        voters.push(Voter {
            voter_id: voter_id.to_owned(),
            voter_name: get(1).to_owned(),
            date_of_birth,
            gender: Gender::parse(get(3)),
            nationality: get(4).to_owned(),
            registration_number: get(5).to_owned(),
            address_street: get(6).to_owned(),
            address_city: get(7).to_owned(),
            address_state: get(8).to_owned(),
            address_country: get(9).to_owned(),
            address_postcode: get(10).to_owned(),
            email: get(11).to_owned(),
            phone_number: get(12).to_owned(),
            cell_number: get(13).to_owned(),
            picture: get(14).to_owned(),
            registered_age,
        });
        check_text(&voters, || format!("CSV line {line}"))?;
    }
    Ok(voters)
}

/// Checks that every text field of the voter just read passes the edge's
/// rules; `at` names the line or record for the error.
fn check_text(voters: &[Voter], at: impl Fn() -> String) -> Result<(), ImportError> {
    let Some(v) = voters.last() else {
        return Ok(());
    };
    let fields = [
        ("voter_id", Kind::Id, &v.voter_id),
        ("voter_name", Kind::Name, &v.voter_name),
        ("nationality", Kind::Text, &v.nationality),
        ("registration_number", Kind::Text, &v.registration_number),
        ("address_street", Kind::Text, &v.address_street),
        ("address_city", Kind::Text, &v.address_city),
        ("address_state", Kind::Text, &v.address_state),
        ("address_country", Kind::Text, &v.address_country),
        ("address_postcode", Kind::Text, &v.address_postcode),
        ("email", Kind::Text, &v.email),
        ("phone_number", Kind::Text, &v.phone_number),
        ("cell_number", Kind::Text, &v.cell_number),
        ("picture", Kind::Text, &v.picture),
    ];
    for (field, kind, value) in fields {
        edge::check(kind, field, value)
            .map_err(|error| ImportError::BadText { at: at(), error })?;
    }
    Ok(())
}

/// Writes `voters` with the [`CSV_COLUMNS`] header; [`from_csv`] reads it back.
pub fn write_csv(voters: &[Voter], w: impl Write) -> Result<(), ImportError> {
    let mut wtr = csv::Writer::from_writer(w);
    wtr.write_record(CSV_COLUMNS).map_err(ImportError::Write)?;
    for v in voters {
        let age = v.registered_age.to_string();
        wtr.write_record([
            v.voter_id.as_str(),
            &v.voter_name,
            &v.date_of_birth,
            v.gender.as_str(),
            &v.nationality,
            &v.registration_number,
            &v.address_street,
            &v.address_city,
            &v.address_state,
            &v.address_country,
            &v.address_postcode,
            &v.email,
            &v.phone_number,
            &v.cell_number,
            &v.picture,
            &age,
        ])
        .map_err(ImportError::Write)?;
    }
    wtr.flush()?;
    Ok(())
}

/// Reads a randomuser.me API response (`{"results": [...], "info": {...}}`)
/// and maps each result as the original's `main.py` did: voter_id from
/// `login.uuid`, registration_number from `login.username`, the street as
/// "number name", picture from `picture.large`.
///
/// One deliberate difference: `registered_age` comes from `dob.age`, the
/// person's age. The original read `registered.age`, the years since
/// registration (0-20), which would put every voter in the 18-24 band and
/// break the 18+ rule the rest of the pipeline relies on.
pub fn from_randomuser_json(reader: impl Read) -> Result<Vec<Voter>, ImportError> {
    let doc: Value = serde_json::from_reader(reader).map_err(ImportError::Json)?;
    if let Some(msg) = doc.get("error").and_then(Value::as_str) {
        return Err(ImportError::BadJsonField {
            path: "error".into(),
            problem: format!("is set: randomuser.me answered {msg:?}"),
        });
    }
    let results = doc
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| ImportError::BadJsonField {
            path: "results".into(),
            problem: "is missing or not an array".into(),
        })?;

    let mut voters = Vec::with_capacity(results.len());
    let mut seen = Seen::default();
    for (i, user) in results.iter().enumerate() {
        let r = Record { user, i };
        let voter_id = r.text(&["login", "uuid"])?;
        if voter_id.trim().is_empty() {
            return Err(r.bad(&["login", "uuid"], "is empty"));
        }
        let raw_dob = r.text(&["dob", "date"])?;
        let date_of_birth = normalize_date(&raw_dob)
            .ok_or_else(|| r.bad(&["dob", "date"], format!("{raw_dob:?} is not an ISO date")))?;
        let registered_age = r
            .field(&["dob", "age"])?
            .as_u64()
            .and_then(|a| u32::try_from(a).ok())
            .ok_or_else(|| r.bad(&["dob", "age"], "is not a non-negative integer"))?;
        seen.check(&voter_id, i as u64, |i| format!("randomuser results[{i}]"))?;

        let mut address_street = r.text(&["location", "street", "number"])?;
        address_street.push(' ');
        address_street.push_str(&r.text(&["location", "street", "name"])?);
        voters.push(Voter {
            voter_name: format!(
                "{} {}",
                r.text(&["name", "first"])?,
                r.text(&["name", "last"])?
            ),
            date_of_birth,
            gender: Gender::parse(&r.text(&["gender"])?),
            nationality: r.text(&["nat"])?,
            registration_number: r.text(&["login", "username"])?,
            address_street,
            address_city: r.text(&["location", "city"])?,
            address_state: r.text(&["location", "state"])?,
            address_country: r.text(&["location", "country"])?,
            address_postcode: r.text(&["location", "postcode"])?,
            email: r.text(&["email"])?,
            phone_number: r.text(&["phone"])?,
            cell_number: r.text(&["cell"])?,
            picture: r.text(&["picture", "large"])?,
            registered_age,
            voter_id,
        });
        check_text(&voters, || format!("randomuser results[{i}]"))?;
    }
    Ok(voters)
}

/// One entry of `results`, for field lookups whose errors name their path.
struct Record<'a> {
    user: &'a Value,
    i: usize,
}

impl Record<'_> {
    fn bad(&self, path: &[&str], problem: impl Into<String>) -> ImportError {
        ImportError::BadJsonField {
            path: format!("results[{}].{}", self.i, path.join(".")),
            problem: problem.into(),
        }
    }

    fn field(&self, path: &[&str]) -> Result<&Value, ImportError> {
        path.iter()
            .try_fold(self.user, |v, key| v.get(key))
            .ok_or_else(|| self.bad(path, "is missing"))
    }

    /// A string, or a number as randomuser sends for some nationalities'
    /// postcodes and for street numbers.
    fn text(&self, path: &[&str]) -> Result<String, ImportError> {
        match self.field(path)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(self.bad(path, format!("is {other}, expected a string or a number"))),
        }
    }
}

/// Remembers where (line or record number) each voter_id was first seen,
/// to name both places.
#[derive(Default)]
struct Seen(HashMap<String, u64>);

impl Seen {
    fn check(
        &mut self,
        voter_id: &str,
        at: u64,
        describe: fn(u64) -> String,
    ) -> Result<(), ImportError> {
        if let Some(&first) = self.0.get(voter_id) {
            return Err(ImportError::DuplicateVoterId {
                voter_id: voter_id.to_owned(),
                at: describe(at),
                first_at: describe(first),
            });
        }
        self.0.insert(voter_id.to_owned(), at);
        Ok(())
    }
}

/// `YYYY-MM-DD`, optionally followed by a time (`T09:44:18.674Z`), to
/// `YYYY-MM-DD`; `None` unless the date part is a real calendar date.
fn normalize_date(s: &str) -> Option<String> {
    let s = s.trim();
    let date = s.get(..10)?;
    let rest = &s[10..];
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(date.to_owned())
}

fn csv_error(e: csv::Error) -> ImportError {
    let line = e.position().map_or(0, |p| p.line());
    let detail = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("is not valid UTF-8 ({err})"),
        _ => e.to_string(),
    };
    ImportError::Csv { line, detail }
}

#[cfg(test)]
mod tests;
