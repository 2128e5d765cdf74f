//! A figure with its reference, and the report that collects them.
//!
//! A figure and its reference are measured in interleaved rounds
//! (reference, figure, reference, figure, …) so a noisy neighbour slows
//! both alike; the figure's ratio is the median of the per-round ratios and
//! its spread the lowest and highest of them. A figure without a measurable
//! reference is read against a goal, marked as such (`reference_kind`).

use serde_json::{json, Value};
use std::time::Instant;

/// Reference and figure values of interleaved rounds.
#[derive(Clone, Debug, Default)]
pub struct Rounds {
    /// The reference measured in each round.
    pub refs: Vec<f64>,
    /// The figure measured in each round, right after its reference.
    pub values: Vec<f64>,
}

impl Rounds {
    /// Adds one round.
    pub fn push(&mut self, reference: f64, value: f64) {
        self.refs.push(reference);
        self.values.push(value);
    }
}

/// Measures `reference` then `figure`, `rounds` times.
pub fn interleave(rounds: usize, mut reference: impl FnMut() -> f64, mut figure: impl FnMut() -> f64) -> Rounds {
    let mut r = Rounds::default();
    for _ in 0..rounds {
        let re = reference();
        let v = figure();
        r.push(re, v);
    }
    r
}

/// The median (mean of the middle two for an even count); 0 when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What a figure is read against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// Measured in the same run, interleaved with the figure.
    Measured,
    /// A goal (a number we chose), not a measurement.
    Goal,
}

/// One figure.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Stable identifier (`section.what`), the key tools and docs use.
    pub id: String,
    /// Human description.
    pub name: String,
    /// Median of the per-round values.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// What it is compared with.
    pub reference_name: String,
    /// Median of the per-round references (or the goal).
    pub reference: f64,
    /// Measured or a goal.
    pub kind: RefKind,
    /// Median of the per-round ratios value/reference.
    pub ratio: f64,
    /// Lowest per-round ratio.
    pub ratio_min: f64,
    /// Highest per-round ratio.
    pub ratio_max: f64,
    /// Per-round values.
    pub values: Vec<f64>,
    /// Per-round references.
    pub references: Vec<f64>,
    /// Section-specific facts (sizes, samples, topology).
    pub detail: Value,
}

fn ratio_of(v: f64, r: f64) -> f64 {
    if r == 0.0 {
        0.0
    } else {
        v / r
    }
}

/// All figures of a run.
pub struct Report {
    /// Reduced sizes.
    pub quick: bool,
    figures: Vec<Figure>,
    notes: Vec<String>,
    started: Instant,
    load_start: String,
    /// Taken at the start: others may commit while a long run goes on.
    commit: String,
}

impl Report {
    /// An empty report.
    pub fn new(quick: bool) -> Self {
        Report {
            quick,
            figures: Vec::new(),
            notes: Vec::new(),
            started: Instant::now(),
            load_start: load_average(),
            commit: commit(),
        }
    }

    /// Rounds a figure is measured in: three at least in a full run.
    pub fn rounds(&self) -> usize {
        if self.quick {
            2
        } else {
            3
        }
    }

    /// Adds a figure from interleaved rounds against a measured reference.
    pub fn add_rounds(&mut self, id: &str, name: &str, unit: &str, reference_name: &str, rounds: &Rounds) {
        let ratios: Vec<f64> = rounds.values.iter().zip(&rounds.refs).map(|(v, r)| ratio_of(*v, *r)).collect();
        self.push(Figure {
            id: id.into(),
            name: name.into(),
            value: median(&rounds.values),
            unit: unit.into(),
            reference_name: reference_name.into(),
            reference: median(&rounds.refs),
            kind: RefKind::Measured,
            ratio: median(&ratios),
            ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratio_max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            values: rounds.values.clone(),
            references: rounds.refs.clone(),
            detail: Value::Null,
        });
    }

    /// Adds a figure read against a goal (`goal_name` says it, e.g.
    /// "goal: < 2 s"); `values` are its runs.
    pub fn add_goal(&mut self, id: &str, name: &str, unit: &str, goal_name: &str, goal: f64, values: &[f64]) {
        let ratios: Vec<f64> = values.iter().map(|v| ratio_of(*v, goal)).collect();
        self.push(Figure {
            id: id.into(),
            name: name.into(),
            value: median(values),
            unit: unit.into(),
            reference_name: goal_name.into(),
            reference: goal,
            kind: RefKind::Goal,
            ratio: median(&ratios),
            ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratio_max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            values: values.to_vec(),
            references: vec![goal; values.len()],
            detail: Value::Null,
        });
    }

    /// Adds a single-run figure against a measured reference. Prefer
    /// [`Report::add_rounds`]; the id is derived from the name.
    #[allow(dead_code)]
    pub fn add(&mut self, name: &str, value: f64, unit: &str, reference_name: &str, reference: f64) {
        let id: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
            .split('_')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        let mut r = Rounds::default();
        r.push(reference, value);
        self.add_rounds(&format!("misc.{id}"), name, unit, reference_name, &r);
    }

    /// Attaches section-specific facts to the figure `id`.
    pub fn detail(&mut self, id: &str, detail: Value) {
        if let Some(f) = self.figures.iter_mut().find(|f| f.id == id) {
            f.detail = detail;
        }
    }

    fn push(&mut self, f: Figure) {
        eprintln!(
            "  {:<36} {:>12} {:<9} {} {:>12}  ratio {:.3} [{:.3}..{:.3}] over {} run(s)",
            f.id,
            num(f.value),
            f.unit,
            if f.kind == RefKind::Goal { "goal" } else { "ref " },
            num(f.reference),
            f.ratio,
            f.ratio_min,
            f.ratio_max,
            f.values.len()
        );
        self.figures.push(f);
    }

    /// Adds a free-form observation.
    pub fn note(&mut self, s: String) {
        eprintln!("  note: {s}");
        self.notes.push(s);
    }

    /// The human table.
    pub fn print(&self) {
        println!(
            "\nlode-bench{} on {} cores, {:.0} s, load average {} at the start, {} at the end",
            if self.quick { " --quick" } else { "" },
            cores(),
            self.started.elapsed().as_secs_f64(),
            self.load_start,
            load_average()
        );
        println!("| id | figure | value | unit | reference | ref value | ratio (median) | min..max | runs |");
        println!("|---|---|---:|---|---|---:|---:|---|---:|");
        for f in &self.figures {
            println!(
                "| `{}` | {} | {} | {} | {} | {} | {:.3} | {:.3}..{:.3} | {} |",
                f.id,
                f.name,
                num(f.value),
                f.unit,
                f.reference_name,
                num(f.reference),
                f.ratio,
                f.ratio_min,
                f.ratio_max,
                f.values.len()
            );
        }
        for n in &self.notes {
            println!("- {n}");
        }
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        let figures: Vec<_> = self
            .figures
            .iter()
            .map(|f| {
                json!({
                    "id": f.id,
                    "name": f.name,
                    "value": f.value,
                    "unit": f.unit,
                    "reference_name": f.reference_name,
                    "reference": f.reference,
                    "reference_kind": if f.kind == RefKind::Goal { "goal" } else { "measured" },
                    "ratio": f.ratio,
                    "ratio_min": f.ratio_min,
                    "ratio_max": f.ratio_max,
                    "runs": f.values.len(),
                    "values": f.values,
                    "references": f.references,
                    "detail": f.detail,
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({
            "quick": self.quick,
            "cores": cores(),
            "commit": self.commit,
            "duration_s": self.started.elapsed().as_secs_f64(),
            "load_average_start": self.load_start,
            "load_average_end": load_average(),
            "figures": figures,
            "notes": self.notes,
        }))
        .unwrap_or_default()
    }
}

/// A number with as many decimals as its size needs (1.44, 123.4, 12345).
fn num(x: f64) -> String {
    match x.abs() {
        a if a >= 1000.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.3}"),
    }
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `/proc/loadavg`'s three averages (Linux), empty elsewhere.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The commit checked out in the source tree this binary was built from
/// (with `+dirty` if the tree has changes), wherever the bench runs from;
/// empty when that tree is not a git work tree.
fn commit() -> String {
    commit_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn commit_in(dir: &std::path::Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}+dirty")
            } else {
                c
            }
        }
        None => String::new(),
    }
}

/// A field of `/proc/<pid>/status` in MiB (`VmRSS`, `VmHWM`, `RssAnon`…);
/// `None` off Linux or when the process is gone.
pub fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_read_from_the_source_tree_not_the_working_directory() {
        let outside = tempfile::tempdir().expect("tempdir");
        assert_eq!(commit_in(outside.path()), "", "no work tree there");
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        if !source.join("../.git").exists() {
            return; // built from an export, not a checkout
        }
        // The bench was once run from outside the checkout and its JSON
        // named no commit. (No other test of this binary uses the working
        // directory.)
        let back = std::env::current_dir().expect("cwd");
        std::env::set_current_dir(outside.path()).expect("cd outside");
        let found = commit();
        std::env::set_current_dir(back).expect("cd back");
        assert!(!found.is_empty(), "the source tree's commit, run from outside it");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn ratio_is_the_median_of_per_round_ratios() {
        let mut report = Report::new(true);
        let mut r = Rounds::default();
        r.push(10.0, 5.0);
        r.push(20.0, 20.0);
        r.push(10.0, 7.0);
        report.add_rounds("x.y", "x", "u", "ref", &r);
        let f = &report.figures[0];
        assert_eq!(f.ratio, 0.7);
        assert_eq!((f.ratio_min, f.ratio_max), (0.5, 1.0));
        assert_eq!(f.values.len(), 3);
    }
}
