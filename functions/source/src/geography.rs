//! Where the synthetic listings are: 50 states, the District of Columbia, Puerto Rico and the
//! US Virgin Islands, each with several real cities and their real zip codes.
//!
//! Each state carries
//! - its share of the listings (roughly the size of its housing market: Florida, Texas and
//!   California lead, as in the Kaggle dataset),
//! - a typical asking price (the median list price of 2022, in round numbers),
//! - its official three-digit zip prefixes (used by a test to catch typos in the city table),
//! - a few cities, each with its first zip code, how many consecutive zip codes it spans, its
//!   share of the state's listings and a price factor relative to the state (Manhattan is
//!   dearer than Buffalo).
//!
//! The figures are plausible rather than authoritative: they make prices vary by place the way
//! real prices do, so a model has something to learn from `state`, `city` and `zip_code`.

/// A state (or DC, or a territory) and its cities.
#[derive(Debug)]
pub struct State {
    /// The full name, as the dataset writes it (`Puerto Rico`, `District of Columbia`).
    pub name: &'static str,
    /// Relative share of all listings (any positive scale; normalised by the generator).
    pub listing_share: f64,
    /// A typical asking price in dollars across all property kinds.
    pub median_price: f64,
    /// Official three-digit zip prefixes, as inclusive ranges, e.g. `(350, 369)` for Alabama.
    pub zip_prefixes: &'static [(u32, u32)],
    pub cities: &'static [City],
}

/// A city and the zip codes its listings get.
#[derive(Debug)]
pub struct City {
    pub name: &'static str,
    /// The first of the city's zip codes, e.g. `601` for 00601.
    pub first_zip: u32,
    /// How many consecutive zip codes, from `first_zip`, the city's listings use.
    pub zip_count: u32,
    /// Relative share of the state's listings.
    pub share: f64,
    /// The city's prices relative to the state's `median_price`.
    pub price_factor: f64,
}

const fn city(
    name: &'static str,
    first_zip: u32,
    zip_count: u32,
    share: f64,
    price_factor: f64,
) -> City {
    City {
        name,
        first_zip,
        zip_count,
        share,
        price_factor,
    }
}

/// Every place the generator puts listings in.
pub static STATES: &[State] = &[
    State {
        name: "Alabama",
        listing_share: 4.0,
        median_price: 280_000.0,
        zip_prefixes: &[(350, 369)],
        cities: &[
            city("Birmingham", 35203, 30, 3.0, 0.9),
            city("Huntsville", 35801, 16, 2.0, 1.15),
            city("Mobile", 36602, 18, 2.0, 0.8),
            city("Montgomery", 36104, 14, 1.5, 0.75),
            city("Tuscaloosa", 35401, 6, 1.0, 0.95),
            city("Gulf Shores", 36542, 1, 0.5, 1.6),
        ],
    },
    State {
        name: "Alaska",
        listing_share: 0.6,
        median_price: 340_000.0,
        zip_prefixes: &[(995, 999)],
        cities: &[
            city("Anchorage", 99501, 17, 3.0, 1.05),
            city("Fairbanks", 99701, 9, 1.0, 0.8),
            city("Juneau", 99801, 3, 0.6, 1.2),
            city("Wasilla", 99654, 1, 1.0, 0.9),
        ],
    },
    State {
        name: "Arizona",
        listing_share: 7.0,
        median_price: 450_000.0,
        zip_prefixes: &[(850, 865)],
        cities: &[
            city("Phoenix", 85003, 40, 4.0, 0.95),
            city("Tucson", 85701, 40, 2.5, 0.75),
            city("Mesa", 85201, 15, 1.5, 0.95),
            city("Scottsdale", 85250, 12, 1.5, 1.9),
            city("Flagstaff", 86001, 5, 0.6, 1.3),
            city("Lake Havasu City", 86403, 4, 0.6, 0.95),
        ],
    },
    State {
        name: "Arkansas",
        listing_share: 2.0,
        median_price: 240_000.0,
        zip_prefixes: &[(716, 729)],
        cities: &[
            city("Little Rock", 72201, 27, 2.0, 1.0),
            city("Fayetteville", 72701, 4, 1.0, 1.3),
            city("Fort Smith", 72901, 16, 1.0, 0.75),
            city("Jonesboro", 72401, 4, 0.7, 0.85),
            city("Hot Springs", 71901, 13, 0.8, 0.9),
        ],
    },
    State {
        name: "California",
        listing_share: 30.0,
        median_price: 750_000.0,
        zip_prefixes: &[(900, 961)],
        cities: &[
            city("Los Angeles", 90001, 90, 6.0, 1.35),
            city("San Diego", 92101, 40, 3.0, 1.15),
            city("San Jose", 95110, 30, 2.0, 1.7),
            city("San Francisco", 94102, 33, 1.5, 1.9),
            city("Sacramento", 95814, 30, 2.0, 0.75),
            city("Fresno", 93701, 30, 1.5, 0.55),
            city("Bakersfield", 93301, 14, 1.2, 0.5),
            city("Palm Springs", 92262, 3, 0.6, 1.2),
        ],
    },
    State {
        name: "Colorado",
        listing_share: 5.0,
        median_price: 560_000.0,
        zip_prefixes: &[(800, 816)],
        cities: &[
            city("Denver", 80202, 37, 3.0, 1.05),
            city("Colorado Springs", 80903, 30, 2.0, 0.85),
            city("Aurora", 80010, 8, 1.2, 0.9),
            city("Fort Collins", 80521, 8, 1.0, 1.0),
            city("Boulder", 80301, 5, 0.6, 1.6),
            city("Aspen", 81611, 2, 0.2, 4.0),
        ],
    },
    State {
        name: "Connecticut",
        listing_share: 3.0,
        median_price: 330_000.0,
        zip_prefixes: &[(60, 69)],
        cities: &[
            city("Hartford", 6103, 18, 1.5, 0.7),
            city("New Haven", 6510, 10, 1.5, 0.8),
            city("Stamford", 6901, 7, 1.0, 1.8),
            city("Bridgeport", 6604, 5, 1.0, 0.8),
            city("Greenwich", 6830, 2, 0.5, 5.0),
            city("Waterbury", 6702, 7, 1.0, 0.6),
            city("Norwich", 6360, 1, 0.6, 0.7),
        ],
    },
    State {
        name: "Delaware",
        listing_share: 0.8,
        median_price: 380_000.0,
        zip_prefixes: &[(197, 199)],
        cities: &[
            city("Wilmington", 19801, 10, 2.0, 0.9),
            city("Dover", 19901, 4, 1.0, 0.8),
            city("Newark", 19711, 3, 1.0, 0.95),
            city("Lewes", 19958, 1, 0.8, 1.5),
        ],
    },
    State {
        name: "District of Columbia",
        listing_share: 0.5,
        median_price: 620_000.0,
        zip_prefixes: &[(200, 205)],
        cities: &[city("Washington", 20001, 37, 1.0, 1.0)],
    },
    State {
        name: "Florida",
        listing_share: 24.0,
        median_price: 420_000.0,
        zip_prefixes: &[(320, 349)],
        cities: &[
            city("Miami", 33125, 65, 4.0, 1.3),
            city("Orlando", 32801, 36, 3.0, 0.9),
            city("Tampa", 33602, 28, 3.0, 0.95),
            city("Jacksonville", 32202, 56, 3.0, 0.8),
            city("Naples", 34102, 18, 1.5, 2.0),
            city("Tallahassee", 32301, 17, 1.2, 0.7),
            city("Cape Coral", 33904, 1, 1.5, 0.9),
            city("Ocala", 34470, 12, 1.5, 0.6),
        ],
    },
    State {
        name: "Georgia",
        listing_share: 9.0,
        median_price: 350_000.0,
        zip_prefixes: &[(300, 319)],
        cities: &[
            city("Atlanta", 30303, 60, 4.0, 1.25),
            city("Savannah", 31401, 19, 1.5, 0.95),
            city("Augusta", 30901, 19, 1.2, 0.7),
            city("Macon", 31201, 17, 1.0, 0.6),
            city("Athens", 30601, 7, 1.0, 1.0),
        ],
    },
    State {
        name: "Hawaii",
        listing_share: 1.0,
        median_price: 850_000.0,
        zip_prefixes: &[(967, 968)],
        cities: &[
            city("Honolulu", 96813, 13, 3.0, 1.0),
            city("Hilo", 96720, 1, 1.0, 0.6),
            city("Kailua", 96734, 1, 0.8, 1.5),
            city("Lahaina", 96761, 1, 0.6, 1.8),
            city("Kapolei", 96707, 1, 0.8, 0.9),
        ],
    },
    State {
        name: "Idaho",
        listing_share: 1.5,
        median_price: 480_000.0,
        zip_prefixes: &[(832, 838)],
        cities: &[
            city("Boise", 83702, 15, 2.0, 1.1),
            city("Meridian", 83642, 5, 1.0, 1.05),
            city("Idaho Falls", 83401, 6, 0.8, 0.75),
            city("Coeur d'Alene", 83814, 2, 0.8, 1.2),
            city("Pocatello", 83201, 4, 0.6, 0.65),
        ],
    },
    State {
        name: "Illinois",
        listing_share: 8.0,
        median_price: 280_000.0,
        zip_prefixes: &[(600, 629)],
        cities: &[
            city("Chicago", 60601, 60, 5.0, 1.25),
            city("Naperville", 60540, 25, 1.0, 1.6),
            city("Springfield", 62701, 11, 1.0, 0.55),
            city("Peoria", 61602, 14, 1.0, 0.55),
            city("Rockford", 61101, 14, 1.0, 0.5),
            city("Champaign", 61820, 3, 0.7, 0.75),
        ],
    },
    State {
        name: "Indiana",
        listing_share: 5.0,
        median_price: 240_000.0,
        zip_prefixes: &[(460, 479)],
        cities: &[
            city("Indianapolis", 46201, 40, 3.0, 1.0),
            city("Fort Wayne", 46802, 24, 1.5, 0.85),
            city("Evansville", 47708, 8, 1.0, 0.8),
            city("South Bend", 46601, 18, 1.0, 0.7),
            city("Bloomington", 47401, 8, 0.8, 1.15),
            city("Carmel", 46032, 2, 0.7, 1.9),
        ],
    },
    State {
        name: "Iowa",
        listing_share: 2.0,
        median_price: 230_000.0,
        zip_prefixes: &[(500, 528)],
        cities: &[
            city("Des Moines", 50309, 24, 2.0, 1.05),
            city("Cedar Rapids", 52401, 12, 1.2, 0.95),
            city("Davenport", 52801, 8, 1.0, 0.85),
            city("Iowa City", 52240, 6, 0.8, 1.25),
            city("Sioux City", 51101, 10, 0.7, 0.75),
        ],
    },
    State {
        name: "Kansas",
        listing_share: 2.0,
        median_price: 250_000.0,
        zip_prefixes: &[(660, 679)],
        cities: &[
            city("Wichita", 67202, 34, 2.0, 0.85),
            city("Overland Park", 66204, 20, 1.5, 1.5),
            city("Kansas City", 66101, 12, 1.0, 0.7),
            city("Topeka", 66603, 16, 1.0, 0.7),
            city("Lawrence", 66044, 6, 0.6, 1.1),
        ],
    },
    State {
        name: "Kentucky",
        listing_share: 3.0,
        median_price: 240_000.0,
        zip_prefixes: &[(400, 427)],
        cities: &[
            city("Louisville", 40202, 42, 3.0, 1.0),
            city("Lexington", 40502, 16, 2.0, 1.15),
            city("Bowling Green", 42101, 4, 1.0, 0.9),
            city("Owensboro", 42301, 3, 0.7, 0.7),
            city("Paducah", 42001, 3, 0.5, 0.65),
        ],
    },
    State {
        name: "Louisiana",
        listing_share: 3.0,
        median_price: 250_000.0,
        zip_prefixes: &[(700, 714)],
        cities: &[
            city("New Orleans", 70112, 20, 2.0, 1.2),
            city("Baton Rouge", 70801, 20, 2.0, 0.95),
            city("Shreveport", 71101, 19, 1.5, 0.65),
            city("Lafayette", 70501, 8, 1.2, 0.9),
            city("Lake Charles", 70601, 7, 0.8, 0.8),
        ],
    },
    State {
        name: "Maine",
        listing_share: 1.2,
        median_price: 380_000.0,
        zip_prefixes: &[(39, 49)],
        cities: &[
            city("Portland", 4101, 3, 1.5, 1.35),
            city("Bangor", 4401, 2, 1.0, 0.7),
            city("Lewiston", 4240, 1, 0.8, 0.65),
            city("Bar Harbor", 4609, 1, 0.4, 1.8),
            city("Augusta", 4330, 1, 0.7, 0.7),
        ],
    },
    State {
        name: "Maryland",
        listing_share: 4.0,
        median_price: 380_000.0,
        zip_prefixes: &[(206, 219)],
        cities: &[
            city("Baltimore", 21201, 40, 3.0, 0.75),
            city("Annapolis", 21401, 5, 1.0, 1.5),
            city("Rockville", 20850, 5, 1.2, 1.6),
            city("Frederick", 21701, 4, 1.0, 1.1),
            city("Ocean City", 21842, 1, 0.6, 1.1),
            city("Hagerstown", 21740, 3, 0.7, 0.7),
        ],
    },
    State {
        name: "Massachusetts",
        listing_share: 5.0,
        median_price: 600_000.0,
        zip_prefixes: &[(10, 27)],
        cities: &[
            city("Boston", 2108, 30, 3.0, 1.4),
            city("Worcester", 1601, 10, 1.5, 0.7),
            city("Springfield", 1103, 17, 1.5, 0.45),
            city("Cambridge", 2138, 5, 0.8, 1.6),
            city("Plymouth", 2360, 1, 0.8, 1.0),
            city("Pittsfield", 1201, 1, 0.6, 0.55),
            city("Nantucket", 2554, 1, 0.2, 5.0),
        ],
    },
    State {
        name: "Michigan",
        listing_share: 7.0,
        median_price: 240_000.0,
        zip_prefixes: &[(480, 499)],
        cities: &[
            city("Detroit", 48201, 40, 3.0, 0.45),
            city("Grand Rapids", 49503, 10, 2.0, 1.15),
            city("Ann Arbor", 48103, 6, 1.0, 1.8),
            city("Lansing", 48906, 10, 1.2, 0.75),
            city("Traverse City", 49684, 3, 0.7, 1.5),
            city("Kalamazoo", 49001, 9, 0.8, 0.9),
        ],
    },
    State {
        name: "Minnesota",
        listing_share: 4.0,
        median_price: 340_000.0,
        zip_prefixes: &[(550, 567)],
        cities: &[
            city("Minneapolis", 55401, 30, 3.0, 1.05),
            city("Saint Paul", 55101, 20, 2.0, 0.95),
            city("Rochester", 55901, 6, 1.0, 0.95),
            city("Duluth", 55802, 10, 0.8, 0.75),
            city("Saint Cloud", 56301, 4, 0.7, 0.75),
        ],
    },
    State {
        name: "Mississippi",
        listing_share: 2.0,
        median_price: 230_000.0,
        zip_prefixes: &[(386, 397)],
        cities: &[
            city("Jackson", 39201, 20, 2.0, 0.75),
            city("Gulfport", 39501, 7, 1.2, 0.95),
            city("Hattiesburg", 39401, 2, 1.0, 0.9),
            city("Tupelo", 38801, 4, 0.8, 0.9),
            city("Oxford", 38655, 1, 0.5, 1.4),
        ],
    },
    State {
        name: "Missouri",
        listing_share: 5.0,
        median_price: 260_000.0,
        zip_prefixes: &[(630, 658)],
        cities: &[
            city("Kansas City", 64105, 50, 2.5, 0.95),
            city("Saint Louis", 63101, 40, 2.5, 0.95),
            city("Springfield", 65802, 8, 1.5, 0.85),
            city("Columbia", 65201, 3, 1.0, 1.05),
            city("Branson", 65616, 1, 0.5, 1.0),
        ],
    },
    State {
        name: "Montana",
        listing_share: 1.0,
        median_price: 550_000.0,
        zip_prefixes: &[(590, 599)],
        cities: &[
            city("Billings", 59101, 6, 1.5, 0.8),
            city("Missoula", 59801, 4, 1.0, 1.0),
            city("Bozeman", 59715, 4, 1.0, 1.5),
            city("Helena", 59601, 2, 0.7, 0.85),
            city("Whitefish", 59937, 1, 0.4, 1.9),
        ],
    },
    State {
        name: "Nebraska",
        listing_share: 1.3,
        median_price: 280_000.0,
        zip_prefixes: &[(680, 693)],
        cities: &[
            city("Omaha", 68102, 36, 2.0, 1.05),
            city("Lincoln", 68502, 20, 1.5, 1.0),
            city("Grand Island", 68801, 3, 0.5, 0.75),
            city("Kearney", 68845, 3, 0.4, 0.85),
        ],
    },
    State {
        name: "Nevada",
        listing_share: 2.5,
        median_price: 420_000.0,
        zip_prefixes: &[(889, 898)],
        cities: &[
            city("Las Vegas", 89101, 80, 4.0, 0.95),
            city("Henderson", 89002, 15, 1.5, 1.15),
            city("Reno", 89501, 24, 1.5, 1.3),
            city("Carson City", 89701, 6, 0.5, 1.0),
            city("Pahrump", 89048, 3, 0.4, 0.6),
        ],
    },
    State {
        name: "New Hampshire",
        listing_share: 1.0,
        median_price: 430_000.0,
        zip_prefixes: &[(30, 38)],
        cities: &[
            city("Manchester", 3101, 9, 1.5, 0.85),
            city("Nashua", 3060, 5, 1.0, 1.0),
            city("Concord", 3301, 3, 0.8, 0.9),
            city("Portsmouth", 3801, 1, 0.6, 1.6),
            city("Keene", 3431, 1, 0.4, 0.75),
        ],
    },
    State {
        name: "New Jersey",
        listing_share: 6.0,
        median_price: 450_000.0,
        zip_prefixes: &[(70, 89)],
        cities: &[
            city("Newark", 7102, 13, 1.5, 0.7),
            city("Jersey City", 7302, 10, 1.5, 1.2),
            city("Trenton", 8608, 11, 1.0, 0.55),
            city("Princeton", 8540, 3, 0.6, 2.0),
            city("Cape May", 8204, 1, 0.5, 1.8),
            city("Hoboken", 7030, 1, 0.6, 1.6),
            city("Toms River", 8753, 3, 1.2, 0.95),
        ],
    },
    State {
        name: "New Mexico",
        listing_share: 1.5,
        median_price: 320_000.0,
        zip_prefixes: &[(870, 884)],
        cities: &[
            city("Albuquerque", 87102, 23, 2.5, 0.95),
            city("Santa Fe", 87501, 8, 1.0, 1.8),
            city("Las Cruces", 88001, 12, 1.0, 0.85),
            city("Roswell", 88201, 3, 0.5, 0.6),
            city("Taos", 87571, 1, 0.3, 1.4),
        ],
    },
    State {
        name: "New York",
        listing_share: 12.0,
        median_price: 420_000.0,
        zip_prefixes: &[(100, 149)],
        cities: &[
            city("New York", 10001, 40, 3.0, 2.4),
            city("Brooklyn", 11201, 39, 2.5, 1.8),
            city("Buffalo", 14201, 26, 1.5, 0.5),
            city("Rochester", 14604, 23, 1.5, 0.5),
            city("Albany", 12203, 8, 1.0, 0.65),
            city("Syracuse", 13202, 23, 1.0, 0.45),
            city("Saratoga Springs", 12866, 1, 0.4, 1.2),
            city("East Hampton", 11937, 1, 0.2, 4.0),
        ],
    },
    State {
        name: "North Carolina",
        listing_share: 9.0,
        median_price: 360_000.0,
        zip_prefixes: &[(270, 289)],
        cities: &[
            city("Charlotte", 28202, 76, 3.0, 1.1),
            city("Raleigh", 27601, 15, 2.5, 1.15),
            city("Greensboro", 27401, 10, 1.2, 0.75),
            city("Durham", 27701, 13, 1.0, 1.05),
            city("Asheville", 28801, 6, 0.8, 1.25),
            city("Wilmington", 28401, 12, 1.0, 1.1),
        ],
    },
    State {
        name: "North Dakota",
        listing_share: 0.5,
        median_price: 280_000.0,
        zip_prefixes: &[(580, 588)],
        cities: &[
            city("Fargo", 58102, 3, 1.5, 1.0),
            city("Bismarck", 58501, 4, 1.0, 1.05),
            city("Grand Forks", 58201, 3, 0.6, 0.9),
            city("Minot", 58701, 3, 0.5, 0.85),
        ],
    },
    State {
        name: "Ohio",
        listing_share: 9.0,
        median_price: 220_000.0,
        zip_prefixes: &[(430, 459)],
        cities: &[
            city("Columbus", 43201, 35, 3.0, 1.2),
            city("Cleveland", 44102, 35, 2.5, 0.6),
            city("Cincinnati", 45202, 50, 2.5, 1.05),
            city("Toledo", 43604, 20, 1.2, 0.6),
            city("Akron", 44301, 20, 1.0, 0.65),
            city("Dayton", 45402, 30, 1.0, 0.7),
        ],
    },
    State {
        name: "Oklahoma",
        listing_share: 3.0,
        median_price: 250_000.0,
        zip_prefixes: &[(730, 749)],
        cities: &[
            city("Oklahoma City", 73102, 60, 3.0, 0.95),
            city("Tulsa", 74103, 45, 2.0, 0.95),
            city("Norman", 73069, 4, 0.8, 1.05),
            city("Lawton", 73501, 5, 0.5, 0.65),
            city("Broken Arrow", 74011, 2, 0.6, 1.15),
        ],
    },
    State {
        name: "Oregon",
        listing_share: 3.0,
        median_price: 500_000.0,
        zip_prefixes: &[(970, 979)],
        cities: &[
            city("Portland", 97201, 40, 3.0, 1.1),
            city("Eugene", 97401, 8, 1.0, 0.95),
            city("Salem", 97301, 8, 1.0, 0.85),
            city("Bend", 97701, 3, 0.8, 1.45),
            city("Medford", 97501, 4, 0.7, 0.85),
        ],
    },
    State {
        name: "Pennsylvania",
        listing_share: 10.0,
        median_price: 260_000.0,
        zip_prefixes: &[(150, 196)],
        cities: &[
            city("Philadelphia", 19102, 53, 3.5, 1.05),
            city("Pittsburgh", 15201, 40, 2.5, 0.8),
            city("Allentown", 18101, 9, 1.0, 0.95),
            city("Harrisburg", 17101, 13, 1.0, 0.8),
            city("Erie", 16501, 11, 0.8, 0.6),
            city("Scranton", 18503, 8, 0.8, 0.55),
            city("State College", 16801, 3, 0.5, 1.2),
        ],
    },
    State {
        name: "Puerto Rico",
        listing_share: 1.5,
        median_price: 170_000.0,
        zip_prefixes: &[(6, 7), (9, 9)],
        cities: &[
            city("San Juan", 901, 36, 3.0, 1.6),
            city("Ponce", 716, 16, 1.2, 0.75),
            city("Mayaguez", 680, 3, 0.8, 0.8),
            city("Adjuntas", 601, 1, 0.4, 0.55),
            city("Bayamon", 956, 6, 1.2, 0.9),
            city("Juana Diaz", 795, 1, 0.5, 0.6),
            city("Carolina", 979, 9, 1.0, 1.1),
            city("Arecibo", 612, 3, 0.6, 0.65),
        ],
    },
    State {
        name: "Rhode Island",
        listing_share: 0.8,
        median_price: 420_000.0,
        zip_prefixes: &[(28, 29)],
        cities: &[
            city("Providence", 2903, 9, 1.5, 0.85),
            city("Warwick", 2886, 4, 1.0, 0.9),
            city("Cranston", 2910, 11, 0.8, 0.85),
            city("Newport", 2840, 2, 0.5, 2.2),
            city("Johnston", 2919, 1, 0.4, 0.9),
        ],
    },
    State {
        name: "South Carolina",
        listing_share: 5.0,
        median_price: 340_000.0,
        zip_prefixes: &[(290, 299)],
        cities: &[
            city("Charleston", 29401, 25, 2.0, 1.5),
            city("Columbia", 29201, 30, 1.5, 0.75),
            city("Greenville", 29601, 17, 1.5, 0.95),
            city("Myrtle Beach", 29572, 8, 1.5, 0.85),
            city("Hilton Head Island", 29926, 3, 0.6, 1.9),
        ],
    },
    State {
        name: "South Dakota",
        listing_share: 0.6,
        median_price: 320_000.0,
        zip_prefixes: &[(570, 577)],
        cities: &[
            city("Sioux Falls", 57103, 8, 1.5, 1.0),
            city("Rapid City", 57701, 3, 1.0, 1.05),
            city("Aberdeen", 57401, 1, 0.4, 0.7),
            city("Brookings", 57006, 1, 0.3, 0.9),
        ],
    },
    State {
        name: "Tennessee",
        listing_share: 6.0,
        median_price: 400_000.0,
        zip_prefixes: &[(370, 385)],
        cities: &[
            city("Nashville", 37201, 40, 3.0, 1.3),
            city("Memphis", 38103, 40, 2.0, 0.55),
            city("Knoxville", 37902, 30, 1.5, 0.9),
            city("Chattanooga", 37402, 20, 1.2, 0.85),
            city("Gatlinburg", 37738, 1, 0.5, 1.2),
            city("Franklin", 37064, 6, 0.6, 2.0),
        ],
    },
    State {
        name: "Texas",
        listing_share: 24.0,
        median_price: 360_000.0,
        zip_prefixes: &[(750, 799), (885, 885)],
        cities: &[
            city("Houston", 77002, 98, 5.0, 0.95),
            city("Dallas", 75201, 53, 4.0, 1.15),
            city("San Antonio", 78205, 55, 3.5, 0.8),
            city("Austin", 78701, 55, 3.0, 1.5),
            city("El Paso", 79901, 38, 1.5, 0.6),
            city("Fort Worth", 76102, 78, 2.0, 0.9),
            city("Lubbock", 79401, 24, 0.8, 0.65),
            city("Corpus Christi", 78401, 18, 1.0, 0.8),
        ],
    },
    State {
        name: "Utah",
        listing_share: 2.5,
        median_price: 560_000.0,
        zip_prefixes: &[(840, 847)],
        cities: &[
            city("Salt Lake City", 84101, 20, 2.5, 1.0),
            city("Provo", 84601, 6, 1.0, 0.9),
            city("Ogden", 84401, 5, 0.8, 0.75),
            city("St. George", 84770, 2, 1.0, 1.05),
            city("Park City", 84060, 1, 0.3, 3.0),
        ],
    },
    State {
        name: "Vermont",
        listing_share: 0.6,
        median_price: 330_000.0,
        zip_prefixes: &[(50, 59)],
        cities: &[
            city("Burlington", 5401, 8, 1.0, 1.25),
            city("Rutland", 5701, 2, 0.6, 0.7),
            city("Montpelier", 5602, 2, 0.4, 0.9),
            city("Stowe", 5672, 1, 0.3, 2.0),
            city("Brattleboro", 5301, 3, 0.4, 0.8),
        ],
    },
    State {
        name: "Virginia",
        listing_share: 6.0,
        median_price: 400_000.0,
        zip_prefixes: &[(201, 201), (220, 246)],
        cities: &[
            city("Virginia Beach", 23451, 14, 2.0, 1.0),
            city("Richmond", 23219, 20, 2.0, 0.9),
            city("Arlington", 22201, 13, 1.2, 1.8),
            city("Norfolk", 23502, 22, 1.2, 0.7),
            city("Roanoke", 24011, 9, 0.8, 0.6),
            city("Charlottesville", 22901, 3, 0.6, 1.3),
        ],
    },
    State {
        name: "Washington",
        listing_share: 6.0,
        median_price: 575_000.0,
        zip_prefixes: &[(980, 994)],
        cities: &[
            city("Seattle", 98101, 99, 3.0, 1.5),
            city("Spokane", 99201, 24, 1.5, 0.7),
            city("Tacoma", 98402, 21, 1.5, 0.85),
            city("Bellevue", 98004, 5, 0.8, 2.2),
            city("Vancouver", 98660, 25, 1.2, 0.9),
            city("Yakima", 98901, 8, 0.6, 0.6),
        ],
    },
    State {
        name: "West Virginia",
        listing_share: 1.3,
        median_price: 200_000.0,
        zip_prefixes: &[(247, 268)],
        cities: &[
            city("Charleston", 25301, 14, 1.5, 1.0),
            city("Huntington", 25701, 5, 1.0, 0.8),
            city("Morgantown", 26501, 8, 1.0, 1.25),
            city("Wheeling", 26003, 1, 0.6, 0.75),
            city("Beckley", 25801, 2, 0.5, 0.7),
        ],
    },
    State {
        name: "Wisconsin",
        listing_share: 4.0,
        median_price: 300_000.0,
        zip_prefixes: &[(530, 549)],
        cities: &[
            city("Milwaukee", 53202, 34, 2.5, 0.8),
            city("Madison", 53703, 23, 1.5, 1.25),
            city("Green Bay", 54301, 14, 1.0, 0.85),
            city("Kenosha", 53140, 5, 0.7, 0.85),
            city("Eau Claire", 54701, 3, 0.6, 0.85),
        ],
    },
    State {
        name: "Wyoming",
        listing_share: 0.5,
        median_price: 400_000.0,
        zip_prefixes: &[(820, 831)],
        cities: &[
            city("Cheyenne", 82001, 9, 1.5, 0.9),
            city("Casper", 82601, 9, 1.0, 0.75),
            city("Jackson", 83001, 2, 0.3, 5.0),
            city("Laramie", 82070, 3, 0.6, 0.85),
        ],
    },
    State {
        name: "Virgin Islands",
        listing_share: 0.2,
        median_price: 450_000.0,
        zip_prefixes: &[(8, 8)],
        cities: &[
            city("Saint Thomas", 802, 4, 1.0, 1.1),
            city("Christiansted", 820, 4, 0.8, 0.9),
            city("Frederiksted", 840, 2, 0.4, 0.8),
            city("Cruz Bay", 830, 2, 0.3, 1.6),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_city_zip_lies_in_its_state_prefixes() {
        for state in STATES {
            assert!(!state.cities.is_empty(), "{} has no city", state.name);
            for city in state.cities {
                assert!(city.zip_count > 0, "{} spans no zip code", city.name);
                for zip in [city.first_zip, city.first_zip + city.zip_count - 1] {
                    let prefix = zip / 100;
                    assert!(
                        state
                            .zip_prefixes
                            .iter()
                            .any(|&(first, last)| (first..=last).contains(&prefix)),
                        "{}, {}: zip {zip:05} is outside the state's prefixes",
                        city.name,
                        state.name,
                    );
                }
            }
        }
    }

    #[test]
    fn covers_fifty_states_dc_and_territories_with_positive_figures() {
        assert_eq!(STATES.len(), 53);
        let mut names: Vec<&str> = STATES.iter().map(|state| state.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STATES.len(), "a state is listed twice");
        for state in STATES {
            assert!(
                state.listing_share > 0.0 && state.median_price > 0.0,
                "{}",
                state.name
            );
            for city in state.cities {
                assert!(city.share > 0.0 && city.price_factor > 0.0, "{}", city.name);
            }
        }
    }
}
