//! Word lists for generated profiles. fake's English locale has surnames but
//! does not split first names by gender, so those lists live here: common US
//! given names across the generations now of voting age.

pub(crate) use fake::locales::{Data, EN};

#[rustfmt::skip]
pub(crate) const FEMALE_FIRST: &[&str] = &[
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah",
    "Karen", "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily",
    "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Dorothy",
    "Rebecca", "Sharon", "Laura", "Cynthia", "Amy", "Kathleen", "Angela", "Shirley", "Brenda",
    "Emma", "Anna", "Pamela", "Nicole", "Samantha", "Katherine", "Christine", "Helen", "Debra",
    "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather", "Diane", "Olivia", "Julie",
    "Joyce", "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina", "Joan", "Evelyn",
    "Judith", "Andrea", "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha", "Madison", "Teresa",
    "Gloria", "Sara", "Janice", "Ann", "Kathryn", "Abigail", "Sophia", "Frances", "Jean", "Alice",
    "Judy", "Isabella", "Julia", "Grace", "Amber", "Denise", "Danielle", "Marilyn", "Beverly",
    "Charlotte", "Natalie", "Theresa", "Diana", "Brittany", "Doris", "Kayla", "Alexis", "Lori",
    "Marie", "Ava", "Mia", "Chloe", "Rosa", "Gabriela", "Aaliyah", "Keisha", "Mei", "Priya",
];

#[rustfmt::skip]
pub(crate) const MALE_FIRST: &[&str] = &[
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Andrew",
    "Paul", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason",
    "Edward", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory", "Alexander", "Patrick",
    "Frank", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose", "Adam", "Nathan",
    "Henry", "Zachary", "Douglas", "Peter", "Kyle", "Noah", "Ethan", "Jeremy", "Walter",
    "Christian", "Keith", "Roger", "Terry", "Austin", "Sean", "Gerald", "Carl", "Harold", "Dylan",
    "Arthur", "Lawrence", "Jordan", "Jesse", "Bryan", "Billy", "Bruce", "Gabriel", "Joe", "Logan",
    "Albert", "Willie", "Alan", "Eugene", "Russell", "Vincent", "Philip", "Bobby", "Johnny",
    "Bradley", "Roy", "Ralph", "Liam", "Mason", "Elijah", "Lucas", "Carlos", "Luis", "Darnell",
    "Wei", "Raj",
];

/// For voters recorded as neither female nor male.
#[rustfmt::skip]
pub(crate) const UNISEX_FIRST: &[&str] = &[
    "Alex", "Jordan", "Taylor", "Casey", "Riley", "Morgan", "Jamie", "Avery", "Quinn", "Skyler",
    "Rowan", "Sam", "Charlie", "Dakota", "Reese", "Emerson", "Finley", "Hayden", "Kendall",
    "Parker", "Sage", "Robin", "Jessie", "Drew",
];

#[rustfmt::skip]
pub(crate) const STREET_NAMES: &[&str] = &[
    "Main", "Oak", "Maple", "Park", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Walnut",
    "Spring", "North", "Ridge", "Lincoln", "Church", "Willow", "Sunset", "Jackson", "Cherry",
    "Highland", "Jefferson", "Mill", "Franklin", "River", "Madison", "Center", "Adams", "Meadow",
    "Forest", "Chestnut", "Hickory", "Valley", "Birch", "Dogwood", "Magnolia", "Sycamore",
    "Lakeview", "Railroad", "Prospect", "Broad", "Market", "Union", "Front", "School", "Grant",
    "Spruce", "Laurel", "Riverside", "Cottonwood", "Aspen", "Mulberry", "Poplar", "Hillcrest",
    "Woodland", "Green", "Fairview", "College", "Jones", "Monroe", "First", "Second", "Third",
    "Fourth", "Fifth", "Sixth", "Seventh", "Eighth",
];

/// Repeats give a rough real-world mix: far more Streets than Circles.
#[rustfmt::skip]
pub(crate) const STREET_SUFFIXES: &[&str] = &[
    "Street", "Street", "Street", "Street", "Avenue", "Avenue", "Avenue", "Road", "Road", "Drive",
    "Drive", "Lane", "Lane", "Boulevard", "Court", "Way", "Place", "Circle", "Terrace", "Parkway",
    "Trail",
];

/// Reserved for documentation (RFC 2606), so no real mailbox is ever named.
pub(crate) const EMAIL_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];

/// The most common US surnames (2010 census order). fake's list alone is
/// heavy on rare names ("Wuckert", "Feest"); drawing mostly from this one
/// gives the Smiths and Garcias a real register is full of.
#[rustfmt::skip]
pub(crate) const COMMON_LAST: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz",
    "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy",
    "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed",
    "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez",
    "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell",
    "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes",
    "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander",
    "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes",
    "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray",
    "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods",
    "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker",
    "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer",
    "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills",
    "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto",
    "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins",
    "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight",
    "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley",
    "Andrews", "Alvarado", "Ray", "Delgado", "Berry", "Perkins", "Hoffman", "Johnston", "Matthews",
    "Pena", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval", "O'Brien",
    "O'Connor", "Wong", "Singh", "Cohen", "Kowalski",
];

/// fake's English surnames: a long tail (including "O'Hara" and "D'Amore")
/// behind [`COMMON_LAST`].
pub(crate) fn rare_last_names() -> &'static [&'static str] {
    EN::NAME_LAST_NAME
}
