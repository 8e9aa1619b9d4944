//! The summary: medians, ratios and efficiencies on stdout, and JSON lines under `target/`.

use super::{quick, test_mode, Ideal};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The runs of one contender on one workload.
#[derive(Clone, Debug)]
pub struct Row {
    pub workload: &'static str,
    pub contender: &'static str,
    pub items: u64,
    pub threads: usize,
    pub ideal: Ideal,
    pub samples: Vec<Duration>,
    pub max_drop: Duration,
    pub wrong: u64,
    pub note: String,
}

pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

/// "model name" from /proc/cpuinfo and the CPUs this process may use.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, nproc {cpus}")
}

/// Where the JSON lines go: `$CARGO_TARGET_DIR` or the crate's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A JSON value, enough for flat objects.
#[derive(Clone, Debug)]
pub enum Json {
    Str(String),
    Num(f64),
    Int(u64),
    Bool(bool),
    Null,
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::Str(s.to_owned())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::Str(s)
    }
}
impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Json::Int(n)
    }
}
impl From<usize> for Json {
    fn from(n: usize) -> Self {
        Json::Int(n as u64)
    }
}
impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}
impl From<Option<f64>> for Json {
    fn from(x: Option<f64>) -> Self {
        x.filter(|x| x.is_finite()).map_or(Json::Null, Json::Num)
    }
}

/// One flat JSON object on one line; fields in the given order.
pub fn json_line(fields: &[(&str, Json)]) -> String {
    fn string(out: &mut String, s: &str) {
        out.push('"');
        for ch in s.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, key);
        out.push(':');
        match value {
            Json::Str(s) => string(&mut out, s),
            Json::Num(x) => {
                let _ = write!(out, "{x}");
            }
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Json::Null => out.push_str("null"),
        }
    }
    out.push('}');
    out
}

/// The value of a string field `"key":"..."` in one of our JSON lines (no escapes needed
/// for the fields we look up).
pub fn json_str_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let start = line.find(&pattern)? + pattern.len();
    let end = line[start..].find('"')?;
    Some(&line[start..start + end])
}

/// The shortest of `samples`, in nanoseconds (0 if there are none).
pub fn min_ns(samples: &[Duration]) -> u64 {
    samples.iter().min().copied().unwrap_or_default().as_nanos() as u64
}

/// Merges a bench's summary `lines` into `target/bench-summary.jsonl` and says where (or
/// why not); writes nothing in test mode or when there are no lines.
pub fn write_summary(lines: &[String]) {
    if test_mode() {
        println!("(test mode: no JSON written)");
    } else if !lines.is_empty() {
        match merge_json_lines("bench-summary.jsonl", lines) {
            Ok(path) => println!("wrote {}", path.display()),
            Err(e) => eprintln!("could not write the summary: {e}"),
        }
    }
}

/// Merges `lines` into the JSON-lines file `name` under `target/`: a line of the file whose
/// `"key"` one of `lines` has is replaced, others are kept (so a filtered run updates only
/// what it measured).
pub fn merge_json_lines(name: &str, lines: &[String]) -> std::io::Result<PathBuf> {
    let path = target_dir().join(name);
    let new_keys: Vec<&str> = lines
        .iter()
        .filter_map(|l| json_str_field(l, "key"))
        .collect();
    let mut kept: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !matches!(json_str_field(l, "key"), Some(k) if new_keys.contains(&k)))
        .map(str::to_owned)
        .collect();
    kept.extend(lines.iter().cloned());
    std::fs::create_dir_all(target_dir())?;
    std::fs::write(&path, kept.join("\n") + "\n")?;
    Ok(path)
}

pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Human-readable duration with 3 significant digits.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Human-readable rate.
pub fn fmt_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.1} /s")
    }
}

/// Collects rows and, at the end, prints the summary and writes the JSON lines.
#[derive(Debug)]
pub struct Summary {
    pub bench: &'static str,
    pub rows: Vec<Row>,
}

impl Summary {
    pub fn new(bench: &'static str) -> Self {
        Summary {
            bench,
            rows: Vec::new(),
        }
    }

    /// Prints the table, writes `target/bench-summary.jsonl` (not in test mode), and exits
    /// with 1 if any output was wrong.
    pub fn finish(self) {
        let machine = machine();
        let quick = quick();
        let run_at = unix_time();
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        println!(
            "\n== {} summary ({machine}; rayon global pool {} threads{}) ==",
            self.bench,
            rayon::current_num_threads(),
            if quick { "; LPM_BENCH_QUICK" } else { "" }
        );
        println!(
            "{:<10} {:<19} {:>7} {:>10} {:>11} {:>12} {:>8} {:>6}  note",
            "workload", "contender", "threads", "items", "median", "items/s", "vs seq", "eff"
        );
        let mut lines = Vec::new();
        let mut wrong = false;
        for row in &self.rows {
            let med = median(&row.samples);
            let seq = self
                .rows
                .iter()
                .find(|r| r.workload == row.workload && r.contender == "seq")
                .map(|r| median(&r.samples));
            let ratio = seq.map(|s| s.as_secs_f64() / med.as_secs_f64());
            let ideal = match row.ideal {
                Ideal::SeqOverThreads => seq.map(|s| s / row.threads as u32),
                Ideal::Fixed(d) => Some(d),
            };
            let efficiency = ideal.map(|i| i.as_secs_f64() / med.as_secs_f64());
            let per_s = row.items as f64 / med.as_secs_f64();
            wrong |= row.wrong > 0;
            let mut note = row.note.clone();
            if row.wrong > 0 {
                note = format!(
                    "WRONG OUTPUT in {} of {} runs; {note}",
                    row.wrong,
                    row.samples.len()
                );
            }
            if row.max_drop > Duration::from_millis(5) {
                note = format!("slow drop (max {}); {note}", fmt_duration(row.max_drop));
            }
            println!(
                "{:<10} {:<19} {:>7} {:>10} {:>11} {:>12} {:>8} {:>6}  {}",
                row.workload,
                row.contender,
                row.threads,
                row.items,
                fmt_duration(med),
                fmt_rate(per_s),
                ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                efficiency.map_or("-".into(), |e| format!("{:.0}%", e * 100.0)),
                note
            );
            lines.push(json_line(&[
                ("key", format!("{}/{}", row.workload, row.contender).into()),
                ("bench", self.bench.into()),
                ("workload", row.workload.into()),
                ("contender", row.contender.into()),
                ("median_ns", (med.as_nanos() as u64).into()),
                ("min_ns", min_ns(&row.samples).into()),
                ("samples", row.samples.len().into()),
                ("items", row.items.into()),
                ("items_per_s", Some(per_s).into()),
                ("ratio", ratio.into()),
                ("efficiency", efficiency.into()),
                (
                    "ideal_ns",
                    ideal.map_or(Json::Null, |i| (i.as_nanos() as u64).into()),
                ),
                ("threads", row.threads.into()),
                ("max_drop_ns", (row.max_drop.as_nanos() as u64).into()),
                ("ok", (row.wrong == 0).into()),
                ("note", row.note.as_str().into()),
                ("quick", quick.into()),
                ("machine", machine.as_str().into()),
                ("command", command.as_str().into()),
                ("run_at", run_at.into()),
            ]));
        }
        write_summary(&lines);
        if wrong {
            eprintln!("some contender produced WRONG OUTPUT (see above)");
            std::process::exit(1);
        }
    }
}
