//! Friendly run names ("brave-otter-42"), as MLflow gives runs created without one.

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fierce", "gentle",
    "glad", "golden", "happy", "keen", "kind", "lively", "lucky", "merry", "nimble", "proud",
    "quick", "quiet", "rapid", "sharp", "shiny", "silent", "steady", "swift", "tidy", "wise",
];
const NOUNS: &[&str] = &[
    "auk",
    "crane",
    "eagle",
    "egret",
    "falcon",
    "finch",
    "gannet",
    "gull",
    "heron",
    "ibis",
    "kestrel",
    "kite",
    "lark",
    "loon",
    "martin",
    "osprey",
    "owl",
    "petrel",
    "puffin",
    "raven",
    "robin",
    "shag",
    "skua",
    "sparrow",
    "stork",
    "swan",
    "swift",
    "tern",
    "wren",
    "kittiwake",
];

pub fn random_run_name() -> String {
    let r: u64 = rand::random();
    let adjective = ADJECTIVES[(r % ADJECTIVES.len() as u64) as usize];
    let noun = NOUNS[((r >> 16) % NOUNS.len() as u64) as usize];
    format!("{adjective}-{noun}-{}", (r >> 32) % 1000)
}

pub fn random_hex_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
