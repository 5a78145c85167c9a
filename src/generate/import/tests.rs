use super::*;

const HEADER: &str = "voter_id,voter_name,date_of_birth,gender,nationality,registration_number,address_street,address_city,address_state,address_country,address_postcode,email,phone_number,cell_number,picture,registered_age";

#[test]
fn csv_fixture_with_hostile_text_is_kept_verbatim() {
    let csv = format!(
        "{HEADER}\n\
         v-1,\"<script>alert(1)</script> O'Hara, \"\"Jr\"\"\",1990-02-28,female,US,R1,1 Main Street,Boston,Massachusetts,United States,02108,a@example.com,(617) 555-0100,(617) 555-0101,/p.svg,36\n\
         v-2,Robert'); DROP TABLE voters;--,1950-12-31T00:00:00Z,nonbinary,US,R2,2 Oak Road,Reno,Nevada,United States,89501,b@example.com,(775) 555-0100,(775) 555-0101,/q.svg,75\n"
    );
    let voters = from_csv(csv.as_bytes()).expect("fixture parses");
    assert_eq!(voters.len(), 2);
    assert_eq!(
        voters[0].voter_name,
        "<script>alert(1)</script> O'Hara, \"Jr\""
    );
    assert_eq!(voters[0].gender, Gender::Female);
    assert_eq!(voters[0].address_postcode, "02108", "leading zero kept");
    assert_eq!(voters[1].voter_name, "Robert'); DROP TABLE voters;--");
    assert_eq!(voters[1].date_of_birth, "1950-12-31");
    assert_eq!(voters[1].gender, Gender::Other);
    assert_eq!(voters[1].registered_age, 75);
}

#[test]
fn csv_columns_may_come_in_any_order_with_extras() {
    let mut cols: Vec<&str> = CSV_COLUMNS.to_vec();
    cols.reverse();
    cols.push("notes");
    let row: Vec<&str> = cols
        .iter()
        .map(|c| match *c {
            "voter_id" => "x",
            "date_of_birth" => "2000-01-01",
            "registered_age" => "26",
            _ => "",
        })
        .collect();
    // A byte-order mark and CRLF endings, as spreadsheet exports write.
    let csv = format!("\u{feff}{}\r\n{}\r\n", cols.join(","), row.join(","));
    let voters = from_csv(csv.as_bytes()).expect("parses");
    assert_eq!(voters[0].voter_id, "x");
    assert_eq!(voters[0].registered_age, 26);
}

#[test]
fn csv_errors_name_line_and_field() {
    let row = |id: &str, dob: &str, age: &str| {
        format!(
            "{id},N,{dob},male,US,R,S,C,Ohio,United States,43004,e@example.com,p,c,/x.svg,{age}\n"
        )
    };
    let ok = row("a", "1980-05-05", "46");
    let msg = |csv: String| match from_csv(csv.as_bytes()) {
        Ok(v) => panic!("accepted {} voters", v.len()),
        Err(e) => e.to_string(),
    };

    let e = msg(format!("{HEADER}\n{ok}{}", row("b", "1980-05-05", "abc")));
    assert_eq!(
        e,
        "CSV line 3: registered_age \"abc\" is not a non-negative integer"
    );
    let e = msg(format!("{HEADER}\n{}", row("a", "1980-02-30", "46")));
    assert_eq!(
        e,
        "CSV line 2: date_of_birth \"1980-02-30\" is not a date (YYYY-MM-DD)"
    );
    let e = msg(format!("{HEADER}\n{ok}{ok}"));
    assert_eq!(
        e,
        "CSV line 3: duplicate voter_id \"a\" (first at CSV line 2)"
    );
    let e = msg(format!("{HEADER}\n{}", row("", "1980-05-05", "46")));
    assert_eq!(e, "CSV line 2: voter_id \"\" is empty");
    let e = msg(format!("{HEADER}\n{ok}a,b\n"));
    assert_eq!(e, "CSV line 3: has 2 fields, the header has 16");
    // The edge's rules: what no store can keep is named, not written.
    let e = msg(format!("{HEADER}\n{ok}{}", row("b\0", "1980-05-05", "46")));
    assert_eq!(
        e,
        "CSV line 3: voter_id contains U+0000 (NUL) at byte 1, which no store can keep"
    );
    let e = msg(format!(
        "{HEADER}\n{}",
        row(&"v".repeat(129), "1980-05-05", "46")
    ));
    assert_eq!(e, "CSV line 2: voter_id is 129 bytes; the limit is 128");
    let e = msg(format!("{HEADER}\n{}", ok.replace(",C,", ",C\0ity,")));
    assert_eq!(
        e,
        "CSV line 2: address_city contains U+0000 (NUL) at byte 1, which no store can keep"
    );
    let e = msg(HEADER.replace(",email", "").to_string() + "\n");
    assert_eq!(e, "CSV header has no \"email\" column");
    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe");
    bytes.extend_from_slice(ok.as_bytes());
    let e = from_csv(&bytes[..])
        .map(|v| v.len())
        .map_err(|e| e.to_string());
    assert!(
        matches!(&e, Err(m) if m.starts_with("CSV line 2: is not valid UTF-8")),
        "{e:?}"
    );
}

const RANDOMUSER: &str = r#"{"results":[
      {"gender":"female","name":{"title":"Ms","first":"Jennie","last":"O'Neil <b>&"},
       "location":{"street":{"number":8929,"name":"Valwood Pkwy"},"city":"Billings","state":"Michigan","country":"United States","postcode":63104,
                   "coordinates":{"latitude":"-69.8246","longitude":"134.8719"},"timezone":{"offset":"+9:30","description":"Adelaide, Darwin"}},
       "email":"jennie.nichols@example.com",
       "login":{"uuid":"7a0eed16-9430-4d68-901f-c0d4c1c3bf00","username":"yellowpeacock117","password":"addison","salt":"sld1yGtd","md5":"ab54ac4c0be9480ae8fa5e9e2a5196a3","sha1":"edcf2ce613cbdea349133c52dc2f3b83168dc51b","sha256":"48df5229235ada28389b91e60a935e4f9b73eb4bdb855ef9258a1751f10bdc5d"},
       "dob":{"date":"1992-03-08T15:13:16.688Z","age":30},"registered":{"date":"2007-07-09T05:51:59.390Z","age":14},
       "phone":"(272) 790-0888","cell":"(489) 330-2385","id":{"name":"SSN","value":"405-88-3636"},
       "picture":{"large":"https://randomuser.me/api/portraits/women/75.jpg","medium":"https://randomuser.me/api/portraits/med/women/75.jpg","thumbnail":"https://randomuser.me/api/portraits/thumb/women/75.jpg"},
       "nat":"US"},
      {"gender":"male","name":{"title":"Mr","first":"Aarav","last":"Shah"},
       "location":{"street":{"number":12,"name":"Station Road"},"city":"Leeds","state":"West Yorkshire","country":"United Kingdom","postcode":"LS1 4AP"},
       "email":"aarav.shah@example.com","login":{"uuid":"0b9c3f7e-1d1e-4a5e-8a9a-2f3c4d5e6f70","username":"bigcat42"},
       "dob":{"date":"1980-11-30T01:02:03.000Z","age":43},"registered":{"date":"2010-01-01T00:00:00.000Z","age":13},
       "phone":"017687 12345","cell":"07700 900123","id":{"name":"NINO","value":"AB 12 34 56 C"},
       "picture":{"large":"https://randomuser.me/api/portraits/men/1.jpg"},"nat":"GB"}
    ],"info":{"seed":"56d27f4a53bd5441","results":2,"page":1,"version":"1.4"}}"#;

#[test]
fn randomuser_fixture_maps_like_the_original() {
    let voters = from_randomuser_json(RANDOMUSER.as_bytes()).expect("fixture parses");
    assert_eq!(voters.len(), 2);
    let v = &voters[0];
    assert_eq!(v.voter_id, "7a0eed16-9430-4d68-901f-c0d4c1c3bf00");
    assert_eq!(v.voter_name, "Jennie O'Neil <b>&", "kept verbatim");
    assert_eq!(v.date_of_birth, "1992-03-08");
    assert_eq!(v.gender, Gender::Female);
    assert_eq!(v.registration_number, "yellowpeacock117");
    assert_eq!(v.address_street, "8929 Valwood Pkwy");
    assert_eq!(v.address_postcode, "63104", "numeric postcode");
    assert_eq!(v.address_state, "Michigan");
    assert_eq!(
        v.picture,
        "https://randomuser.me/api/portraits/women/75.jpg"
    );
    assert_eq!(v.registered_age, 30, "dob.age, not registered.age");
    assert_eq!(v.nationality, "US");
    assert_eq!(voters[1].address_postcode, "LS1 4AP", "string postcode");
    assert_eq!(voters[1].cell_number, "07700 900123");
}

#[test]
fn randomuser_text_a_store_cannot_keep_is_named() {
    let doc = RANDOMUSER.replace("Billings", "Bill\\u0000ings");
    let e = from_randomuser_json(doc.as_bytes())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "randomuser results[0]: address_city contains U+0000 (NUL) at byte 4, which no store can keep"
    );
}

#[test]
fn randomuser_errors_name_the_record_and_field() {
    let msg = |json: &str| match from_randomuser_json(json.as_bytes()) {
        Ok(v) => panic!("accepted {} voters", v.len()),
        Err(e) => e.to_string(),
    };
    let second_without_uuid =
        RANDOMUSER.replace(r#""uuid":"0b9c3f7e-1d1e-4a5e-8a9a-2f3c4d5e6f70","#, "");
    assert_eq!(
        msg(&second_without_uuid),
        "randomuser JSON: results[1].login.uuid is missing"
    );
    let bad_age = RANDOMUSER.replace(r#""age":43"#, r#""age":"old""#);
    assert_eq!(
        msg(&bad_age),
        "randomuser JSON: results[1].dob.age is not a non-negative integer"
    );
    let dup = RANDOMUSER.replace(
        "0b9c3f7e-1d1e-4a5e-8a9a-2f3c4d5e6f70",
        "7a0eed16-9430-4d68-901f-c0d4c1c3bf00",
    );
    assert_eq!(
        msg(&dup),
        "randomuser results[1]: duplicate voter_id \"7a0eed16-9430-4d68-901f-c0d4c1c3bf00\" (first at randomuser results[0])"
    );
    let null_city = RANDOMUSER.replace(r#""city":"Leeds""#, r#""city":null"#);
    assert_eq!(
        msg(&null_city),
        "randomuser JSON: results[1].location.city is null, expected a string or a number"
    );
    assert_eq!(
        msg(r#"{"info":{}}"#),
        "randomuser JSON: results is missing or not an array"
    );
    assert!(msg(r#"{"error":"Uh oh, something has gone wrong."}"#).contains("Uh oh"));
    assert!(msg("{\"results\": [").starts_with("randomuser JSON is malformed: EOF"));
}

#[test]
fn date_normalization() {
    assert_eq!(normalize_date("2000-02-29").as_deref(), Some("2000-02-29"));
    assert_eq!(
        normalize_date(" 1993-07-20T09:44:18.674Z ").as_deref(),
        Some("1993-07-20")
    );
    assert_eq!(normalize_date("2001-02-29"), None);
    assert_eq!(normalize_date("07/20/1993"), None);
    assert_eq!(normalize_date("1993-07-201"), None);
    assert_eq!(
        normalize_date("aééééééééé"),
        None,
        "no panic on a non-boundary cut"
    );
    assert_eq!(normalize_date(""), None);
}
