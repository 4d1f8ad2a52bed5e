//! Store maintenance: `compact`, `vacuum`, `verify` and `delete`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use atlas_store::Atlas;
use indicatif::{ProgressBar, ProgressStyle};

use crate::exec::CliError;

/// Exit code of `verify` when it found damage.
pub const DAMAGED: u8 = 4;

pub fn size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else if bytes < 1 << 30 {
        format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
    } else {
        format!("{:.2} GiB", bytes as f64 / 1_073_741_824.0)
    }
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A spinner on a terminal (stderr), hidden otherwise.
fn spinner(message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Parses a duration such as `0`, `90s`, `15m`, `1h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 7d"))?;
    let secs = match unit.trim() {
        "" if n == 0 => 0,
        "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n * 60,
        "h" | "hour" | "hours" => n * 3600,
        "d" | "day" | "days" => n * 86_400,
        "w" | "week" | "weeks" => n * 604_800,
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 90s, 15m, 1h or 7d"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

async fn open(store: &Path, retention: Option<Duration>) -> Result<Atlas, CliError> {
    let atlas = Atlas::open_location(&store.to_string_lossy()).await?;
    if let Some(r) = retention {
        atlas.set_orphan_retention(r);
    }
    Ok(atlas)
}

/// `atlas-sql compact STORE`.
pub async fn compact(store: &Path, retention: Option<Duration>) -> Result<ExitCode, CliError> {
    let mut atlas = open(store, retention).await?;
    let before: u64 = atlas.list_segments().iter().map(|s| s.size).sum();
    let segments = atlas.list_segments().len();
    let bar = spinner(&format!(
        "compacting {} ({})",
        plural(segments, "segment", "segments"),
        size(before)
    ));
    let report = atlas.compact().await;
    bar.finish_and_clear();
    let report = report?;
    let after: u64 = atlas.list_segments().iter().map(|s| s.size).sum();
    let rewritten = if report.variables_rewritten.is_empty() {
        "no variable needed rewriting".to_string()
    } else {
        format!(
            "rewrote {} into one segment each ({})",
            plural(report.variables_rewritten.len(), "variable", "variables"),
            report.variables_rewritten.join(", ")
        )
    };
    println!(
        "compacted {}: {rewritten}; removed {} ({}); live segments {} → {}",
        store.display(),
        plural(report.segments_removed, "segment file", "segment files"),
        size(report.bytes_removed),
        size(before),
        size(after),
    );
    print_kept(report.retired_kept, report.orphans_kept);
    Ok(ExitCode::SUCCESS)
}

fn print_kept(retired: usize, orphans: usize) {
    if retired + orphans > 0 {
        println!(
            "kept for now: {} (readers of older generations may still read them) and {}, \
             younger than the retention; `atlas-sql vacuum STORE` removes them once older",
            plural(retired, "retired segment", "retired segments"),
            plural(orphans, "unreferenced segment", "unreferenced segments"),
        );
    }
}

/// `atlas-sql vacuum STORE [--retention D] [--dry-run]`.
pub async fn vacuum(
    store: &Path,
    retention: Option<Duration>,
    dry_run: bool,
) -> Result<ExitCode, CliError> {
    let mut atlas = open(store, retention).await?;
    let shown = duration_text(retention.unwrap_or(atlas_store::DEFAULT_ORPHAN_RETENTION));
    let plan = atlas.vacuum_plan().await?;
    if dry_run {
        let bytes: u64 = plan
            .retired
            .iter()
            .chain(&plan.orphans)
            .map(|(_, b)| b)
            .sum();
        let n = plan.retired.len() + plan.orphans.len();
        println!(
            "dry run: vacuum would remove {} ({}) from {} (retention {shown}):",
            plural(n, "segment", "segments"),
            size(bytes),
            store.display()
        );
        for (key, b) in &plan.retired {
            println!("  {:<12} {key}  {}", "retired", size(*b));
        }
        for (key, b) in &plan.orphans {
            println!("  {:<12} {key}  {}", "unreferenced", size(*b));
        }
        if plan.retired_kept + plan.orphans_kept > 0 {
            println!(
                "it would keep {} and {}, younger than {shown}",
                plural(plan.retired_kept, "retired segment", "retired segments"),
                plural(
                    plan.orphans_kept,
                    "unreferenced segment",
                    "unreferenced segments"
                ),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bar = spinner("removing segments no commit needs");
    let report = atlas.vacuum().await;
    bar.finish_and_clear();
    let report = report?;
    println!(
        "vacuumed {} (retention {shown}): removed {} ({})",
        store.display(),
        plural(report.segments_removed, "segment file", "segment files"),
        size(report.bytes_removed),
    );
    print_kept(report.retired_kept, report.orphans_kept);
    Ok(ExitCode::SUCCESS)
}

/// `atlas-sql verify STORE`: exit code [`DAMAGED`] when a segment is missing or damaged.
pub async fn verify(store: &Path) -> Result<ExitCode, CliError> {
    // A catalog that cannot be read fails here, with the object named.
    let atlas = open(store, None).await?;
    let total: u64 = atlas.list_segments().iter().map(|s| s.size).sum();
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let report = atlas.verify_all(|done, _| bar.set_position(done)).await;
    bar.finish_and_clear();
    let report = report?;
    println!(
        "checked the catalog (generation {}) and {} ({}) of {}: {}",
        atlas.generation(),
        plural(report.segments_checked, "segment", "segments"),
        size(report.bytes_checked),
        store.display(),
        if report.damaged.is_empty() {
            "all intact".to_string()
        } else {
            format!("{} missing or damaged", report.damaged.len())
        }
    );
    for d in &report.damaged {
        match &d.error {
            atlas_store::Error::SegmentGone { .. } => {
                println!("missing: {}", d.key);
                println!("  the catalog references it, but the file is not in the store");
            }
            other => {
                println!("damaged: {}", d.key);
                println!("  {other}");
            }
        }
        let shown: Vec<String> = d
            .holds
            .iter()
            .take(10)
            .map(|(ds, a)| format!("{ds:?} {a}"))
            .collect();
        println!(
            "  holds {}: {}{}",
            plural(d.holds.len(), "array", "arrays"),
            shown.join(", "),
            if d.holds.len() > 10 { ", …" } else { "" }
        );
    }
    if report.damaged.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "queries that read these arrays fail with an error naming the segment; the rest \
             answer as before. Restore the files from a backup, or delete the datasets and \
             ingest them again"
        );
        Ok(ExitCode::from(DAMAGED))
    }
}

/// Whether `name` matches the SQL `LIKE` pattern (`%` any run, `_` one character, `\` escapes).
pub fn like(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('%', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some(('_', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                s.first() == Some(&rest[0]) && go(&rest[1..], &s[1..])
            }
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    go(&p, &s)
}

/// `atlas-sql delete STORE [DATASET…] [--like PATTERN] [--dry-run]`.
pub async fn delete(
    store: &Path,
    names: &[String],
    pattern: Option<&str>,
    dry_run: bool,
) -> Result<ExitCode, CliError> {
    if names.is_empty() && pattern.is_none() {
        return Err(CliError::Usage(
            "name the datasets to delete, or pass --like 'PATTERN'".into(),
        ));
    }
    let mut atlas = open(store, None).await?;
    let missing: Vec<&String> = names.iter().filter(|n| !atlas.dataset_exists(n)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|n| format!("{n:?}")).collect();
        return Err(CliError::Usage(format!(
            "{} has no dataset {}; nothing was deleted",
            store.display(),
            list.join(", ")
        )));
    }
    let mut doomed: Vec<String> = names.to_vec();
    if let Some(p) = pattern {
        for n in atlas.list_datasets() {
            if like(p, &n) && !doomed.contains(&n) {
                doomed.push(n);
            }
        }
    }
    doomed.sort();
    doomed.dedup();
    let shown = |v: &[String]| -> String {
        let mut s: Vec<String> = v.iter().take(20).map(|n| format!("{n:?}")).collect();
        if v.len() > 20 {
            s.push(format!("… and {} more", v.len() - 20));
        }
        s.join(", ")
    };
    if doomed.is_empty() {
        println!(
            "no dataset of {} matches {:?}; nothing to delete",
            store.display(),
            pattern.unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        println!(
            "dry run: would delete {} from {}: {}",
            plural(doomed.len(), "dataset", "datasets"),
            store.display(),
            shown(&doomed)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let bar = spinner(&format!(
        "deleting {}",
        plural(doomed.len(), "dataset", "datasets")
    ));
    for n in &doomed {
        atlas.delete_dataset(n).await?;
    }
    // One commit: all of them go, or (on an error) none.
    let flushed = atlas.flush().await;
    bar.finish_and_clear();
    flushed?;
    println!(
        "deleted {} from {} in one commit: {}; {} bytes stay on disk until `atlas-sql compact`",
        plural(doomed.len(), "dataset", "datasets"),
        store.display(),
        shown(&doomed),
        if doomed.len() == 1 { "its" } else { "their" }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_as_sql_does() {
        assert!(like("R69%", "R6901234_001"));
        assert!(!like("R69%", "D6901234_001"));
        assert!(like("a_c", "abc") && !like("a_c", "abbc"));
        assert!(like("%", "") && like("%x%", "axb") && !like("%x%", "ab"));
        assert!(like("100\\%", "100%") && !like("100\\%", "1000"));
        assert!(like("é_", "éa"));
    }

    #[test]
    fn durations_take_the_units_people_write() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5").is_err());
        assert_eq!(duration_text(Duration::from_secs(3600)), "1h");
    }
}
