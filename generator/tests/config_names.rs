//! Top names are checked before anything is generated: every top key of a config against the
//! Verilog-2005 and SystemVerilog keywords, against each other, and against every module name
//! the config's engines generate. Each case is an error naming the key, the value and a fix;
//! none panics.

use coforge_generator::artifacts::{plan, render, RenderError};
use coforge_generator::config::{Config, ConfigError};
use coforge_generator::rtl::names::KEYWORDS;

/// Configs that between them generate every kind of module: int8 sparse, int8 dense, int4
/// saturating, and the fp16 training engine (STCE, SORE and WUVE with the fp units).
const BASES: [&str; 4] = [
    "[stce]\nrows = 2\ncols = 2\nn = 2\nm = 8\n",
    "[stce]\nrows = 2\ncols = 2\nn = 4\nm = 4\n",
    "[stce]\nrows = 2\ncols = 3\nn = 1\nm = 4\nweight_bits = 4\noverflow = \"saturate\"\n",
    "[stce]\nrows = 1\ncols = 1\ndtype = \"fp16\"\nn = 2\nm = 8\n[train]\n",
];

/// `base` with the top named by `key` set to `name`.
fn with_top(base: &str, key: &str, name: &str) -> String {
    let (section, field) = key.split_once('.').unwrap();
    base.replace(
        &format!("[{section}]\n"),
        &format!("[{section}]\n{field} = \"{name}\"\n"),
    )
}

fn top_keys(base: &str) -> Vec<&'static str> {
    let cfg = Config::from_toml(base, "base").unwrap();
    cfg.tops().into_iter().map(|(k, _)| k).collect()
}

fn assert_names(err: &str, key: &str, value: &str, fix: &str) {
    assert!(
        err.contains(&format!("`{key}`")) && err.contains(value) && err.contains(fix),
        "expected an error naming `{key}`, {value:?} and {fix:?}, got: {err}"
    );
}

#[test]
fn every_top_key_refuses_every_keyword() {
    assert_eq!(
        top_keys(BASES[3]),
        ["stce.top", "train.sore_top", "train.wuve_top"]
    );
    for key in top_keys(BASES[3]) {
        for kw in KEYWORDS {
            let err = Config::from_toml(&with_top(BASES[3], key, kw), "t")
                .unwrap_err()
                .to_string();
            assert_names(&err, key, &format!("\"{kw}\""), "keyword");
        }
    }
    // Keywords are case-sensitive: these are ordinary names.
    let cfg = Config::from_toml(&with_top(BASES[0], "stce.top", "Module"), "t").unwrap();
    assert!(render(&cfg).is_ok());
}

#[test]
fn names_that_are_no_plain_identifier_are_refused() {
    for key in top_keys(BASES[3]) {
        for bad in ["", "9x", "_x", "a-b", "a b", "a__b", "top$"] {
            let err = Config::from_toml(&with_top(BASES[3], key, bad), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key} = {bad:?}: {err}");
        }
    }
}

#[test]
fn two_tops_with_one_name_are_refused() {
    let keys = top_keys(BASES[3]);
    for (i, first) in keys.iter().enumerate() {
        for second in &keys[i + 1..] {
            let toml = with_top(&with_top(BASES[3], first, "engine"), second, "engine");
            let err = Config::from_toml(&toml, "t").unwrap_err().to_string();
            assert_names(
                &err,
                second,
                "\"engine\"",
                &format!("`{first}` already names"),
            );
        }
    }
}

#[test]
fn a_top_named_like_a_generated_module_is_refused_before_generation() {
    let mut checked = 0;
    for base in BASES {
        let cfg = Config::from_toml(base, "base").unwrap();
        let generated: Vec<String> = plan(&cfg).iter().flat_map(|e| e.module_names()).collect();
        // The names `plan` promises are exactly the non-top modules that are rendered.
        let rendered = render(&cfg).unwrap();
        let mut files: Vec<String> = rendered
            .verilog
            .iter()
            .map(|(f, _)| f.trim_end_matches(".v").to_string())
            .filter(|m| !rendered.tops.iter().any(|t| t.name == *m))
            .collect();
        let mut promised = generated.clone();
        files.sort();
        promised.sort();
        promised.dedup();
        assert_eq!(files, promised, "{base}");
        for key in top_keys(base) {
            for module in &generated {
                let toml = with_top(base, key, module);
                // A valid-looking config: it parses; rendering it is refused, not a panic.
                let cfg = Config::from_toml(&toml, "t").unwrap();
                let err = render(&cfg).unwrap_err();
                assert!(
                    matches!(err, RenderError::Config(ConfigError::Invalid { key: k, .. }) if k == key),
                    "{key} = {module}: {err}"
                );
                assert_names(&err.to_string(), key, &format!("\"{module}\""), "generates");
                checked += 1;
            }
        }
    }
    // One PE in each int8 config; in the training one, 3 tops x 20 names (the STCE's fp16
    // multiplier, adder with its three stages (align, sum, round) and PE, the SORE lane, the
    // WUVE's three fp units, their stages (the adder's three, the multiplier's four, the fp16
    // conversion's two) and lane; the adder and its stages are shared and listed by both
    // engines).
    assert_eq!(checked, 1 + 1 + 1 + 3 * 20);
}

#[test]
fn a_module_name_of_another_config_is_a_free_name() {
    // No fp unit in an int8 engine: the name is free there.
    let cfg = Config::from_toml(&with_top(BASES[0], "stce.top", "cf_fp32_mul"), "t").unwrap();
    let r = render(&cfg).unwrap();
    assert_eq!(r.top, "cf_fp32_mul");
}
