//! The 50 states and DC: population, a few real cities, ZIP prefixes and a
//! political lean, so a generated electorate is spread like the real one and
//! a simulated election night looks like a real map.

use std::sync::OnceLock;

/// One state (or DC).
///
/// `zip_prefixes` runs parallel to `cities`: `zip_prefixes[i]` is the real
/// three-digit ZIP prefix of `cities[i]`, so a generated city and postcode
/// agree with each other.
#[derive(Debug)]
pub struct UsState {
    /// USPS code, e.g. "CA".
    pub code: &'static str,
    /// Full name as stored in `address_state`, e.g. "California".
    pub name: &'static str,
    /// 2020 census resident population, in thousands.
    pub population_k: u32,
    /// Real cities, largest first (the generator favours the early ones).
    pub cities: &'static [&'static str],
    pub zip_prefixes: &'static [&'static str],
    /// In [-1, 1]: the 2024 presidential two-party margin, Democratic minus
    /// Republican, as a fraction (Wyoming about -0.46, DC about +0.84). The
    /// simulator maps it onto the fictional parties.
    pub lean: f64,
    /// Electoral votes under the 2024 apportionment (538 in all). Maine and
    /// Nebraska split theirs by district in real life; here every state is
    /// winner-take-all, which is what a state-level count can decide.
    pub electoral_votes: u16,
    /// When the state's last polls close, in half-hour steps after the
    /// first wave (7 pm Eastern: Georgia, Indiana, Kentucky, ...), so an
    /// election with a poll schedule closes states in their real waves.
    pub close_step: u8,
}

macro_rules! st {
    ($code:literal, $name:literal, $pop:literal, $lean:literal, $ev:literal, $close:literal,
     [$($city:literal => $zip:literal),+ $(,)?]) => {
        UsState {
            code: $code,
            name: $name,
            population_k: $pop,
            cities: &[$($city),+],
            zip_prefixes: &[$($zip),+],
            lean: $lean,
            electoral_votes: $ev,
            close_step: $close,
        }
    };
}

pub static STATES: &[UsState] = &[
    st!("AL", "Alabama", 5024, -0.305, 9, 2, ["Birmingham" => "352", "Montgomery" => "361", "Huntsville" => "358", "Mobile" => "366", "Tuscaloosa" => "354"]),
    st!("AK", "Alaska", 733, -0.131, 3, 12, ["Anchorage" => "995", "Fairbanks" => "997", "Juneau" => "998", "Wasilla" => "996"]),
    st!("AZ", "Arizona", 7152, -0.055, 11, 4, ["Phoenix" => "850", "Tucson" => "857", "Mesa" => "852", "Chandler" => "852", "Scottsdale" => "852", "Flagstaff" => "860"]),
    st!("AR", "Arkansas", 3012, -0.306, 6, 3, ["Little Rock" => "722", "Fort Smith" => "729", "Fayetteville" => "727", "Springdale" => "727", "Jonesboro" => "724"]),
    st!("CA", "California", 39538, 0.202, 54, 8, ["Los Angeles" => "900", "San Diego" => "921", "San Jose" => "951", "San Francisco" => "941", "Fresno" => "937", "Sacramento" => "958", "Long Beach" => "908", "Oakland" => "946"]),
    st!("CO", "Colorado", 5774, 0.110, 10, 4, ["Denver" => "802", "Colorado Springs" => "809", "Aurora" => "800", "Fort Collins" => "805", "Boulder" => "803"]),
    st!("CT", "Connecticut", 3606, 0.145, 7, 2, ["Bridgeport" => "066", "Stamford" => "069", "New Haven" => "065", "Hartford" => "061", "Waterbury" => "067"]),
    st!("DE", "Delaware", 990, 0.147, 3, 2, ["Wilmington" => "198", "Dover" => "199", "Newark" => "197"]),
    st!("DC", "District of Columbia", 690, 0.838, 3, 2, ["Washington" => "200"]),
    st!("FL", "Florida", 21538, -0.131, 30, 2, ["Jacksonville" => "322", "Miami" => "331", "Tampa" => "336", "Orlando" => "328", "St. Petersburg" => "337", "Tallahassee" => "323"]),
    st!("GA", "Georgia", 10712, -0.022, 16, 0, ["Atlanta" => "303", "Augusta" => "309", "Columbus" => "319", "Macon" => "312", "Savannah" => "314", "Athens" => "306"]),
    st!("HI", "Hawaii", 1455, 0.231, 4, 10, ["Honolulu" => "968", "Hilo" => "967", "Kailua" => "967", "Pearl City" => "967"]),
    st!("ID", "Idaho", 1839, -0.365, 4, 8, ["Boise" => "837", "Meridian" => "836", "Nampa" => "836", "Idaho Falls" => "834", "Pocatello" => "832"]),
    st!("IL", "Illinois", 12813, 0.109, 19, 2, ["Chicago" => "606", "Aurora" => "605", "Naperville" => "605", "Joliet" => "604", "Rockford" => "611", "Springfield" => "627", "Peoria" => "616"]),
    st!("IN", "Indiana", 6786, -0.190, 11, 0, ["Indianapolis" => "462", "Fort Wayne" => "468", "Evansville" => "477", "South Bend" => "466", "Carmel" => "460"]),
    st!("IA", "Iowa", 3190, -0.132, 6, 6, ["Des Moines" => "503", "Cedar Rapids" => "524", "Davenport" => "528", "Sioux City" => "511", "Iowa City" => "522"]),
    st!("KS", "Kansas", 2938, -0.161, 6, 4, ["Wichita" => "672", "Overland Park" => "662", "Kansas City" => "661", "Olathe" => "660", "Topeka" => "666"]),
    st!("KY", "Kentucky", 4506, -0.305, 8, 0, ["Louisville" => "402", "Lexington" => "405", "Bowling Green" => "421", "Owensboro" => "423", "Covington" => "410"]),
    st!("LA", "Louisiana", 4658, -0.220, 8, 4, ["New Orleans" => "701", "Baton Rouge" => "708", "Shreveport" => "711", "Lafayette" => "705", "Lake Charles" => "706"]),
    st!("ME", "Maine", 1362, 0.069, 4, 2, ["Portland" => "041", "Lewiston" => "042", "Bangor" => "044", "South Portland" => "041", "Augusta" => "043"]),
    st!("MD", "Maryland", 6177, 0.285, 10, 2, ["Baltimore" => "212", "Columbia" => "210", "Germantown" => "208", "Silver Spring" => "209", "Frederick" => "217", "Annapolis" => "214"]),
    st!("MA", "Massachusetts", 7030, 0.252, 11, 2, ["Boston" => "021", "Worcester" => "016", "Springfield" => "011", "Cambridge" => "021", "Lowell" => "018"]),
    st!("MI", "Michigan", 10077, -0.014, 15, 4, ["Detroit" => "482", "Grand Rapids" => "495", "Warren" => "480", "Sterling Heights" => "483", "Ann Arbor" => "481", "Lansing" => "489"]),
    st!("MN", "Minnesota", 5706, 0.042, 10, 4, ["Minneapolis" => "554", "Saint Paul" => "551", "Rochester" => "559", "Duluth" => "558", "Bloomington" => "554"]),
    st!("MS", "Mississippi", 2961, -0.229, 6, 2, ["Jackson" => "392", "Gulfport" => "395", "Southaven" => "386", "Hattiesburg" => "394", "Biloxi" => "395"]),
    st!("MO", "Missouri", 6154, -0.184, 10, 2, ["Kansas City" => "641", "St. Louis" => "631", "Springfield" => "658", "Columbia" => "652", "Independence" => "640"]),
    st!("MT", "Montana", 1084, -0.201, 4, 6, ["Billings" => "591", "Missoula" => "598", "Great Falls" => "594", "Bozeman" => "597", "Helena" => "596"]),
    st!("NE", "Nebraska", 1962, -0.205, 5, 4, ["Omaha" => "681", "Lincoln" => "685", "Bellevue" => "680", "Grand Island" => "688", "Kearney" => "688"]),
    st!("NV", "Nevada", 3105, -0.031, 6, 6, ["Las Vegas" => "891", "Henderson" => "890", "Reno" => "895", "North Las Vegas" => "890", "Sparks" => "894"]),
    st!("NH", "New Hampshire", 1378, 0.028, 4, 2, ["Manchester" => "031", "Nashua" => "030", "Concord" => "033", "Dover" => "038", "Rochester" => "038"]),
    st!("NJ", "New Jersey", 9289, 0.059, 14, 2, ["Newark" => "071", "Jersey City" => "073", "Paterson" => "075", "Elizabeth" => "072", "Trenton" => "086", "Camden" => "081"]),
    st!("NM", "New Mexico", 2118, 0.060, 5, 4, ["Albuquerque" => "871", "Las Cruces" => "880", "Rio Rancho" => "871", "Santa Fe" => "875", "Roswell" => "882"]),
    st!("NY", "New York", 20201, 0.126, 28, 4, ["New York" => "100", "Brooklyn" => "112", "Buffalo" => "142", "Rochester" => "146", "Yonkers" => "107", "Syracuse" => "132", "Albany" => "122"]),
    st!("NC", "North Carolina", 10439, -0.032, 16, 1, ["Charlotte" => "282", "Raleigh" => "276", "Greensboro" => "274", "Durham" => "277", "Winston-Salem" => "271", "Fayetteville" => "283"]),
    st!("ND", "North Dakota", 779, -0.365, 3, 4, ["Fargo" => "581", "Bismarck" => "585", "Grand Forks" => "582", "Minot" => "587", "West Fargo" => "580"]),
    st!("OH", "Ohio", 11799, -0.112, 17, 1, ["Columbus" => "432", "Cleveland" => "441", "Cincinnati" => "452", "Toledo" => "436", "Akron" => "443", "Dayton" => "454"]),
    st!("OK", "Oklahoma", 3959, -0.343, 7, 2, ["Oklahoma City" => "731", "Tulsa" => "741", "Norman" => "730", "Broken Arrow" => "740", "Lawton" => "735"]),
    st!("OR", "Oregon", 4237, 0.143, 8, 8, ["Portland" => "972", "Salem" => "973", "Eugene" => "974", "Gresham" => "970", "Bend" => "977"]),
    st!("PA", "Pennsylvania", 13003, -0.017, 19, 2, ["Philadelphia" => "191", "Pittsburgh" => "152", "Allentown" => "181", "Erie" => "165", "Reading" => "196", "Scranton" => "185"]),
    st!("RI", "Rhode Island", 1097, 0.138, 4, 2, ["Providence" => "029", "Warwick" => "028", "Cranston" => "029", "Pawtucket" => "028", "Newport" => "028"]),
    st!("SC", "South Carolina", 5118, -0.178, 9, 0, ["Charleston" => "294", "Columbia" => "292", "North Charleston" => "294", "Greenville" => "296", "Rock Hill" => "297"]),
    st!("SD", "South Dakota", 887, -0.292, 3, 4, ["Sioux Falls" => "571", "Rapid City" => "577", "Aberdeen" => "574", "Brookings" => "570", "Watertown" => "572"]),
    st!("TN", "Tennessee", 6911, -0.297, 11, 2, ["Nashville" => "372", "Memphis" => "381", "Knoxville" => "379", "Chattanooga" => "374", "Clarksville" => "370"]),
    st!("TX", "Texas", 29146, -0.137, 40, 4, ["Houston" => "770", "San Antonio" => "782", "Dallas" => "752", "Austin" => "787", "Fort Worth" => "761", "El Paso" => "799"]),
    st!("UT", "Utah", 3272, -0.216, 6, 6, ["Salt Lake City" => "841", "West Valley City" => "841", "Provo" => "846", "West Jordan" => "840", "Ogden" => "844"]),
    st!("VT", "Vermont", 643, 0.315, 3, 0, ["Burlington" => "054", "South Burlington" => "054", "Rutland" => "057", "Barre" => "056", "Montpelier" => "056"]),
    st!("VA", "Virginia", 8631, 0.058, 13, 0, ["Virginia Beach" => "234", "Chesapeake" => "233", "Norfolk" => "235", "Richmond" => "232", "Arlington" => "222", "Roanoke" => "240"]),
    st!("WA", "Washington", 7705, 0.182, 12, 8, ["Seattle" => "981", "Spokane" => "992", "Tacoma" => "984", "Vancouver" => "986", "Bellevue" => "980", "Olympia" => "985"]),
    st!("WV", "West Virginia", 1794, -0.419, 4, 1, ["Charleston" => "253", "Huntington" => "257", "Morgantown" => "265", "Parkersburg" => "261", "Wheeling" => "260"]),
    st!("WI", "Wisconsin", 5894, -0.009, 10, 4, ["Milwaukee" => "532", "Madison" => "537", "Green Bay" => "543", "Kenosha" => "531", "Racine" => "534"]),
    st!("WY", "Wyoming", 577, -0.458, 3, 4, ["Cheyenne" => "820", "Casper" => "826", "Laramie" => "820", "Gillette" => "827", "Rock Springs" => "829"]),
];

/// The latest `close_step` of any state (Alaska's): a state the table does
/// not know closes with the last wave, so no ballot is refused early.
pub const LAST_CLOSE_STEP: u8 = 12;

pub fn state_by_name(name: &str) -> Option<&'static UsState> {
    STATES.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

pub fn state_by_code(code: &str) -> Option<&'static UsState> {
    STATES.iter().find(|s| s.code.eq_ignore_ascii_case(code))
}

/// Running totals of `population_k`, so a uniform draw below the last entry
/// maps to a state with probability proportional to its population.
fn cumulative() -> &'static [u32] {
    static CUMULATIVE: OnceLock<Vec<u32>> = OnceLock::new();
    CUMULATIVE.get_or_init(|| {
        STATES
            .iter()
            .scan(0u32, |acc, s| {
                *acc += s.population_k;
                Some(*acc)
            })
            .collect()
    })
}

/// Total population in thousands: the exclusive upper bound for [`state_at`].
pub(crate) fn total_population_k() -> u32 {
    cumulative().last().copied().unwrap_or(0)
}

/// The state that owns `point` in `0..total_population_k()`.
pub(crate) fn state_at(point: u32) -> &'static UsState {
    let i = cumulative().partition_point(|&c| c <= point);
    &STATES[i.min(STATES.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_consistent() {
        assert_eq!(STATES.len(), 51, "50 states plus DC");
        let mut codes: Vec<_> = STATES.iter().map(|s| s.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 51, "codes are unique");
        for s in STATES {
            assert_eq!(s.cities.len(), s.zip_prefixes.len(), "{}", s.name);
            assert!(!s.cities.is_empty(), "{}", s.name);
            assert!((-1.0..=1.0).contains(&s.lean), "{}", s.name);
            assert!(s.population_k > 500, "{}", s.name);
            for z in s.zip_prefixes {
                assert!(z.len() == 3 && z.bytes().all(|b| b.is_ascii_digit()));
            }
        }
        let ev: u32 = STATES.iter().map(|s| u32::from(s.electoral_votes)).sum();
        assert_eq!(ev, 538, "the Electoral College");
        assert!(STATES
            .iter()
            .all(|s| s.electoral_votes >= 3 && s.close_step <= LAST_CLOSE_STEP));
        let total = total_population_k();
        assert!(
            (330_000..333_000).contains(&total),
            "US 2020: 331.4M, got {total}k"
        );
    }

    #[test]
    fn lookups_and_weighted_boundaries() {
        assert_eq!(state_by_name("california").map(|s| s.code), Some("CA"));
        assert_eq!(state_by_code("wy").map(|s| s.name), Some("Wyoming"));
        assert!(state_by_name("Atlantis").is_none());
        assert_eq!(state_at(0).code, "AL");
        assert_eq!(state_at(5023).code, "AL");
        assert_eq!(state_at(5024).code, "AK");
        assert_eq!(state_at(total_population_k() - 1).code, "WY");
        // Lean orders the extremes the way a real map does.
        let lean = |c| state_by_code(c).map(|s| s.lean).unwrap_or(f64::NAN);
        assert!(lean("WY") < -0.4 && lean("CA") > 0.15 && lean("MA") > 0.15);
        assert!(lean("PA").abs() < 0.05 && lean("WI").abs() < 0.05);
    }
}
