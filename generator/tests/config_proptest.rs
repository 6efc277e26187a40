//! Property tests of the config parser (`Config::from_toml`) over arbitrary text and arbitrary
//! TOML documents: it never panics, and it either returns an error that names the file or the
//! key, or a parse that is correct (every key of the document has its value in the `Config`) and
//! round-trips (serialised again, as TOML or as the resolved JSON, and parsed, it is equal).

use std::collections::BTreeMap;

use coforge_generator::config::{Config, ConfigError};
use proptest::prelude::*;
use toml::Value;

const ORIGIN: &str = "prop.toml";

/// Any TOML value, nested a little.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        (-3i64..=300).prop_map(Value::Integer),
        any::<bool>().prop_map(Value::Boolean),
        any::<f64>().prop_map(Value::Float),
        name().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
}

/// Strings a config might hold: the real enum words, module names (good, keywords, generated
/// names, duplicates of the defaults), and arbitrary text.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("int8"),
            Just("fp16"),
            Just("int4"),
            Just("wrap"),
            Just("saturate"),
            Just("stce_top"),
            Just("sore_top"),
            Just("wuve_top"),
            Just("module"),
            Just("logic"),
            Just("wuve_lane"),
            Just("9x"),
            Just(""),
        ]
        .prop_map(str::to_string),
        "[a-zA-Z_][a-zA-Z0-9_$]{0,20}",
        ".{0,30}",
    ]
}

/// A value for `key`: usually one of the plausible kind (near and across the valid range),
/// sometimes anything at all.
fn value_for(key: &'static str) -> BoxedStrategy<Value> {
    let plausible = match key {
        "rows" | "cols" => ints(1..=64, &[0, 65, -1]),
        "n" => ints(1..=4, &[0, 9, 17]),
        "m" => ints(4..=16, &[0, 1, 2, 17]),
        "weight_bits" => ints(4..=4, &[6, 16]).prop_union(ints(8..=8, &[])).boxed(),
        "sore_lanes" | "wuve_lanes" => ints(1..=256, &[0, 257]),
        "sparse" => any::<bool>().prop_map(Value::Boolean).boxed(),
        "dtype" => words(&["int8", "fp16"]),
        "overflow" => words(&["wrap", "saturate"]),
        _ => prop_oneof![
            6 => "[a-z][a-z0-9_]{0,10}".prop_map(Value::String),
            1 => name().prop_map(Value::String),
        ]
        .boxed(),
    };
    prop_oneof![29 => plausible, 1 => any_value()].boxed()
}

/// An integer in `valid`, or sometimes one of `edges` (just outside it).
fn ints(valid: std::ops::RangeInclusive<i64>, edges: &'static [i64]) -> BoxedStrategy<Value> {
    if edges.is_empty() {
        return valid.prop_map(Value::Integer).boxed();
    }
    prop_oneof![8 => valid, 1 => proptest::sample::select(edges)]
        .prop_map(Value::Integer)
        .boxed()
}

/// One of `valid`, or sometimes any other string.
fn words(valid: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        6 => proptest::sample::select(valid).prop_map(|w| Value::String(w.to_string())),
        1 => name().prop_map(Value::String),
    ]
    .boxed()
}

/// A section with each of `keys` present or not, and sometimes an unknown key.
fn section(keys: &'static [&'static str]) -> impl Strategy<Value = BTreeMap<String, Value>> {
    let entries: Vec<_> = keys
        .iter()
        .map(|&k| {
            // The keys without a default are nearly always there.
            let present = if REQUIRED.contains(&k) { 0.97 } else { 0.6 };
            proptest::option::weighted(present, value_for(k)).prop_map(move |v| (k, v))
        })
        .collect();
    (
        entries,
        proptest::option::weighted(0.1, ("[a-z_]{1,8}", any_value())),
    )
        .prop_map(|(entries, extra)| {
            let mut t: BTreeMap<String, Value> = entries
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect();
            if let Some((k, v)) = extra {
                t.insert(k, v);
            }
            t
        })
}

const STCE_KEYS: &[&str] = &[
    "rows",
    "cols",
    "dtype",
    "weight_bits",
    "n",
    "m",
    "sparse",
    "overflow",
    "top",
];
const REQUIRED: &[&str] = &["rows", "cols", "n", "m"];
const TRAIN_KEYS: &[&str] = &["sore_lanes", "wuve_lanes", "sore_top", "wuve_top"];

/// A whole document: `[stce]` (nearly always), `[train]` (often), and sometimes a stray section
/// or a section that is not a table.
fn document() -> impl Strategy<Value = BTreeMap<String, Value>> {
    (
        proptest::option::weighted(0.95, section(STCE_KEYS)),
        proptest::option::weighted(0.4, section(TRAIN_KEYS)),
        proptest::option::weighted(0.05, ("[a-z_]{1,8}", any_value())),
    )
        .prop_map(|(stce, train, extra)| {
            let mut doc = BTreeMap::new();
            if let Some((k, v)) = extra {
                doc.insert(k, v);
            }
            if let Some(s) = stce {
                doc.insert("stce".to_string(), Value::Table(s.into_iter().collect()));
            }
            if let Some(t) = train {
                doc.insert("train".to_string(), Value::Table(t.into_iter().collect()));
            }
            doc
        })
}

/// The checks on one parse result. Returns whether it parsed.
fn check(text: &str, doc: Option<&BTreeMap<String, Value>>) -> Result<bool, TestCaseError> {
    let cfg = match Config::from_toml(text, ORIGIN) {
        Err(e) => {
            // A clear error: it names the file, or the key with the value and a fix.
            let msg = e.to_string();
            match &e {
                ConfigError::Parse { .. } => prop_assert!(msg.contains(ORIGIN), "{msg}"),
                ConfigError::Invalid { key, fix, .. } => {
                    prop_assert!(msg.contains(key) && !fix.is_empty(), "{msg}")
                }
                ConfigError::MissingSection { section, .. } => {
                    prop_assert!(msg.contains(section), "{msg}")
                }
                ConfigError::Read { .. } => prop_assert!(false, "no file was read: {msg}"),
            }
            return Ok(false);
        }
        Ok(cfg) => cfg,
    };
    // A correct parse: every key of the document has its value in the config.
    if let Some(doc) = doc {
        let back = Value::try_from(&cfg).expect("a config serialises to TOML");
        for (section, table) in doc {
            let (Value::Table(table), Some(Value::Table(parsed))) = (table, back.get(section))
            else {
                prop_assert!(
                    false,
                    "section {section} accepted but not parsed as a table"
                );
                unreachable!()
            };
            for (key, value) in table {
                prop_assert_eq!(parsed.get(key), Some(value), "{}.{}", section, key);
            }
        }
    }
    // Round trips: TOML and the resolved JSON.
    let again = toml::to_string(&cfg).expect("a config serialises to TOML");
    prop_assert_eq!(&Config::from_toml(&again, "again").unwrap(), &cfg);
    let json: Config = serde_json::from_str(&cfg.resolved_json()).expect("resolved JSON parses");
    prop_assert_eq!(&json, &cfg);
    prop_assert_eq!(json.hash(), cfg.hash());
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        check(&text, None)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&String::from_utf8_lossy(&bytes), None)?;
    }

    #[test]
    fn arbitrary_toml_is_an_error_or_a_correct_parse(doc in document()) {
        let text = toml::to_string(&Value::Table(doc.clone().into_iter().collect()))
            .expect("a TOML table serialises");
        check(&text, Some(&doc))?;
    }

    /// Mutations of a valid document: cut at any byte, or one byte replaced.
    #[test]
    fn damaged_documents_never_panic(cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let good = "[stce]\nrows = 4\ncols = 4\ndtype = \"fp16\"\nn = 2\nm = 8\n\n[train]\nsore_lanes = 4\n";
        check(&good[..cut.index(good.len() + 1)], None)?;
        let mut bytes = good.as_bytes().to_vec();
        bytes[at.index(good.len())] = byte;
        check(&String::from_utf8_lossy(&bytes), None)?;
    }
}

/// The generators above reach both outcomes often, so the properties are tested on real parses
/// and on real errors (a fixed seed, so the count is reproducible).
#[test]
fn the_documents_reach_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as RunnerConfig, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = document();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..2000 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        let text = toml::to_string(&Value::Table(doc.clone().into_iter().collect())).unwrap();
        match check(&text, Some(&doc)) {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok >= 200 && err >= 200, "{ok} parsed, {err} refused");
}
