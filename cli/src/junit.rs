//! JUnit XML for CI dashboards (GitLab, Jenkins, GitHub test reporters), shared by every verb
//! that compares tensors (`--junit FILE`).
//!
//! The layout is the common JUnit schema: `<testsuites>` holds one `<testsuite>` per run (or per
//! training step), each with `<properties>` (seed, config, tool versions: what a replay needs)
//! and one `<testcase>` per compared tensor. A tensor that differs gets a `<failure>` whose
//! `message` names the first mismatch (tensor, index, golden, RTL, cycle) and the number of
//! differing elements. The file is written atomically, and verbs write it before they report a
//! failed comparison, since that is when CI needs it.

use std::path::Path;

use anyhow::Context;

use coforge_driver::compare::Comparison;

use crate::output::write_file_atomic;

/// A whole report: `<testsuites>`.
#[derive(Clone, Debug, Default)]
pub struct Junit {
    /// `name` of `<testsuites>`, e.g. `coforge verify`.
    pub name: String,
    pub suites: Vec<Suite>,
}

/// One `<testsuite>`: a run, or one step of a run.
#[derive(Clone, Debug, Default)]
pub struct Suite {
    pub name: String,
    /// Wall time of the work this suite covers, in seconds.
    pub time: f64,
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Case>,
}

/// One `<testcase>`: one compared tensor.
#[derive(Clone, Debug)]
pub struct Case {
    /// Dotted group, e.g. `verify.default`: dashboards group by it.
    pub classname: String,
    pub name: String,
    /// Seconds, when this case's own work was timed.
    pub time: Option<f64>,
    pub failure: Option<Failure>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    /// One line: shown by every dashboard.
    pub message: String,
    /// `type` attribute, e.g. `mismatch`.
    pub kind: String,
    /// Body text: details a reader expands.
    pub text: String,
}

impl Case {
    /// A tensor comparison as a test case: it fails exactly when some element differs.
    pub fn from_comparison(classname: &str, name: &str, c: &Comparison) -> Case {
        let failure = c.first_mismatch.as_ref().map(|first| Failure {
            message: format!(
                "{first}; {} of {} elements differ",
                c.mismatches, c.elements
            ),
            kind: "mismatch".into(),
            text: format!(
                "tensor `{}`: {} of {} elements differ bit for bit\n{first}\n",
                c.tensor, c.mismatches, c.elements
            ),
        });
        Case {
            classname: classname.to_string(),
            name: name.to_string(),
            time: None,
            failure,
        }
    }
}

impl Suite {
    fn failures(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }
}

impl Junit {
    pub fn to_xml(&self) -> String {
        let tests: usize = self.suites.iter().map(|s| s.cases.len()).sum();
        let failures: usize = self.suites.iter().map(Suite::failures).sum();
        let time: f64 = self.suites.iter().map(|s| s.time).sum();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x += &format!(
            "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">\n",
            escape(&self.name)
        );
        for s in &self.suites {
            x += &format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\">\n",
                escape(&s.name),
                s.cases.len(),
                s.failures(),
                s.time
            );
            if !s.properties.is_empty() {
                x += "    <properties>\n";
                for (k, v) in &s.properties {
                    x += &format!(
                        "      <property name=\"{}\" value=\"{}\"/>\n",
                        escape(k),
                        escape(v)
                    );
                }
                x += "    </properties>\n";
            }
            for c in &s.cases {
                x += &format!(
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    escape(&c.classname),
                    escape(&c.name)
                );
                if let Some(t) = c.time {
                    x += &format!(" time=\"{t:.3}\"");
                }
                match &c.failure {
                    None => x += "/>\n",
                    Some(f) => {
                        x += &format!(
                            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                            escape(&f.message),
                            escape(&f.kind),
                            escape(&f.text)
                        );
                    }
                }
            }
            x += "  </testsuite>\n";
        }
        x += "</testsuites>\n";
        x
    }

    /// Writes the XML atomically (a temporary sibling, then a rename), creating its folder.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {} for the JUnit report", dir.display()))?;
        }
        write_file_atomic(path, self.to_xml().as_bytes())
            .with_context(|| format!("cannot write the JUnit report {}", path.display()))
    }
}

/// A config's short name for test names: its file name without `.toml`.
pub fn config_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// The command line as typed, for a `replay` property.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// XML text and attribute escaping. Characters that XML 1.0 cannot hold at all (most control
/// characters) become U+FFFD, so any message yields a well-formed file.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coforge_driver::compare::compare;
    use ndarray::array;

    fn report() -> Junit {
        let same = compare("c", array![[1i32, 2]].view(), array![[1i32, 2]].view()).unwrap();
        let diff = compare("y", array![[1i32, 2]].view(), array![[1i32, 3]].view()).unwrap();
        Junit {
            name: "coforge <test> & \"quotes\"".into(),
            suites: vec![Suite {
                name: "verify.cfg".into(),
                time: 1.5,
                properties: vec![
                    ("seed".into(), "7".into()),
                    ("bad".into(), "a\u{1}b".into()),
                ],
                cases: vec![
                    Case::from_comparison("verify.cfg", "stce_top.c", &same),
                    Case::from_comparison("verify.cfg", "stce_top.y", &diff),
                ],
            }],
        }
    }

    #[test]
    fn well_formed_with_counts_failure_and_escapes() {
        let xml = report().to_xml();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("name"), Some("coforge <test> & \"quotes\""));
        assert_eq!(root.attribute("tests"), Some("2"));
        assert_eq!(root.attribute("failures"), Some("1"));
        let props: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|n| (n.attribute("name").unwrap(), n.attribute("value").unwrap()))
            .collect();
        assert_eq!(props, [("seed", "7"), ("bad", "a\u{FFFD}b")]);
        let failure = root
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("first mismatch in `y` at [0, 1]: golden 2 but RTL 3; 1 of 2 elements differ")
        );
        assert_eq!(
            failure.parent().unwrap().attribute("name"),
            Some("stce_top.y")
        );
    }

    #[test]
    fn written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        report().write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<?xml"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
