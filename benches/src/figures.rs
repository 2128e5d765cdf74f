//! A figure with its reference, and the report that collects them.

use serde_json::json;

/// One measured figure.
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The measurement.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// What it is compared with (measured in the same run).
    pub reference_name: String,
    /// The reference value.
    pub reference: f64,
}

impl Figure {
    /// value / reference.
    pub fn ratio(&self) -> f64 {
        if self.reference == 0.0 {
            0.0
        } else {
            self.value / self.reference
        }
    }
}

/// All figures of a run.
pub struct Report {
    /// Reduced sizes.
    pub quick: bool,
    figures: Vec<Figure>,
    notes: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new(quick: bool) -> Self {
        Report { quick, figures: Vec::new(), notes: Vec::new() }
    }

    /// Adds a figure and prints it at once (long runs show progress).
    pub fn add(&mut self, name: &str, value: f64, unit: &str, reference_name: &str, reference: f64) {
        let f =
            Figure { name: name.into(), value, unit: unit.into(), reference_name: reference_name.into(), reference };
        eprintln!(
            "  {:<44} {:>14.1} {:<10} ref {:>14.1} ({})  ratio {:.3}",
            f.name,
            f.value,
            f.unit,
            f.reference,
            f.reference_name,
            f.ratio()
        );
        self.figures.push(f);
    }

    /// Adds a free-form observation.
    #[allow(dead_code)]
    pub fn note(&mut self, s: String) {
        eprintln!("  note: {s}");
        self.notes.push(s);
    }

    /// The human table.
    pub fn print(&self) {
        println!("\nlode-bench{} on {} cores", if self.quick { " --quick" } else { "" }, cores());
        println!("| figure | value | unit | reference | ref value | ratio |");
        println!("|---|---:|---|---|---:|---:|");
        for f in &self.figures {
            println!(
                "| {} | {:.1} | {} | {} | {:.1} | {:.3} |",
                f.name,
                f.value,
                f.unit,
                f.reference_name,
                f.reference,
                f.ratio()
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
            .map(|f| json!({"name": f.name, "value": f.value, "unit": f.unit, "reference_name": f.reference_name, "reference": f.reference, "ratio": f.ratio()}))
            .collect();
        serde_json::to_string_pretty(
            &json!({"quick": self.quick, "cores": cores(), "figures": figures, "notes": self.notes}),
        )
        .unwrap_or_default()
    }
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Peak resident memory of this process in MiB (Linux), 0 elsewhere.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
