//! The interactive shell: multi-line statements ending in `;`, backslash commands, history, and
//! Ctrl-C that cancels the running query rather than the shell. Without a terminal (input piped
//! in) it reads lines plainly, prints no prompt, and exits non-zero if a statement failed.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use atlas_datafusion::{AtlasOptions, AtlasTable};
use datafusion::prelude::SessionContext;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::exec::{CliError, Format, Printer, run_sql};
use atlas_ingest::consistency::table_summary;

const HELP: &str = "\
Statements end with `;` and may span lines. Commands:
  \\d            list tables
  \\d NAME       columns and types of a table
  \\datasets     the datasets of the default store (SELECT * FROM _datasets)
  \\timing       toggle timing of statements
  \\format [F]   show or set the output format: table, csv, json, ndjson
  \\q            quit
  \\?            this help";

enum Input {
    Terminal(Box<DefaultEditor>, Option<PathBuf>),
    Piped(std::io::StdinLock<'static>),
}

impl Input {
    /// The next line; `Ok(None)` at end of input; `Err(())` on Ctrl-C at the prompt.
    fn line(&mut self, prompt: &str) -> Result<Option<String>, ()> {
        match self {
            Input::Terminal(ed, _) => match ed.readline(prompt) {
                Ok(l) => Ok(Some(l)),
                Err(ReadlineError::Interrupted) => Err(()),
                Err(_) => Ok(None),
            },
            Input::Piped(stdin) => {
                let mut l = String::new();
                match stdin.read_line(&mut l) {
                    Ok(0) | Err(_) => Ok(None),
                    Ok(_) => Ok(Some(l.trim_end_matches(['\n', '\r']).to_string())),
                }
            }
        }
    }

    fn remember(&mut self, entry: &str) {
        if let Input::Terminal(ed, _) = self {
            let _ = ed.add_history_entry(entry);
        }
    }

    fn save(&mut self) {
        if let Input::Terminal(ed, Some(path)) = self {
            let _ = ed.save_history(path);
        }
    }
}

fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ATLAS_SQL_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".atlas_sql_history"))
}

/// Runs one backslash command. `Ok(false)` means quit.
async fn command(
    ctx: &SessionContext,
    line: &str,
    printer: &mut Printer,
) -> Result<bool, CliError> {
    let mut parts = line.split_whitespace();
    let cmd = parts.next().unwrap_or("");
    let arg = parts.next();
    match (cmd, arg) {
        ("\\q", _) => return Ok(false),
        ("\\?", _) | ("\\h", _) => println!("{HELP}"),
        ("\\d", None) => {
            run_sql(
                ctx,
                "SELECT table_schema AS schema, table_name AS name, table_type AS type \
                 FROM information_schema.tables WHERE table_schema <> 'information_schema' \
                 ORDER BY table_schema, table_name",
                printer,
            )
            .await?
        }
        ("\\d", Some(name)) => {
            let (schema, table) = match name.split_once('.') {
                Some((s, t)) => (Some(s), t),
                None => (None, name),
            };
            let quote = |s: &str| s.replace('\'', "''");
            let mut sql = format!(
                "SELECT column_name AS column, data_type AS type, is_nullable AS nullable \
                 FROM information_schema.columns WHERE table_name = '{}'",
                quote(table)
            );
            match schema {
                Some(s) => sql.push_str(&format!(" AND table_schema = '{}'", quote(s))),
                None => {
                    let state = ctx.state();
                    let default = &state.config().options().catalog.default_schema;
                    sql.push_str(&format!(" AND table_schema = '{}'", quote(default)));
                }
            }
            sql.push_str(" ORDER BY ordinal_position");
            if ctx.table(name).await.is_err() {
                return Err(CliError::Usage(format!(
                    "no table {name:?}; \\d lists them"
                )));
            }
            run_sql(ctx, &sql, printer).await?;
            if let Ok(provider) = ctx.table_provider(name).await
                && let Some(table) = provider.downcast_ref::<AtlasTable>()
            {
                let conflicts: Vec<_> = table.conflicts().collect();
                let policy = AtlasOptions::type_conflicts_of(ctx.state().config().options());
                for line in table_summary(table.name(), &conflicts, policy) {
                    println!("{line}");
                }
            }
        }
        ("\\datasets", _) => run_sql(ctx, "SELECT * FROM _datasets", printer).await?,
        ("\\timing", _) => {
            printer.timing = !printer.timing;
            println!("Timing is {}.", if printer.timing { "on" } else { "off" });
        }
        ("\\format", None) => println!("Format is {:?}.", printer.format),
        ("\\format", Some(f)) => {
            printer.format = f.parse::<Format>().map_err(CliError::Usage)?;
            println!("Format is {:?}.", printer.format);
        }
        _ => {
            return Err(CliError::Usage(format!(
                "unknown command {cmd:?}; \\? lists the commands"
            )));
        }
    }
    Ok(true)
}

/// Runs the shell until `\q` or end of input.
pub async fn run(ctx: &SessionContext, printer: &mut Printer) -> Result<(), CliError> {
    let interactive = std::io::stdin().is_terminal();
    let mut input = if interactive {
        let mut ed = DefaultEditor::new()
            .map_err(|e| CliError::Usage(format!("cannot start the line editor: {e}")))?;
        let path = history_path();
        if let Some(p) = &path {
            let _ = ed.load_history(p);
        }
        if !printer.quiet {
            println!(
                "atlas-sql {} — SQL over ATLAS stores. End statements with `;`, \\? for help, \\q to quit.",
                env!("CARGO_PKG_VERSION")
            );
        }
        Input::Terminal(Box::new(ed), path)
    } else {
        Input::Piped(std::io::stdin().lock())
    };
    let mut buffer = String::new();
    let mut failed = 0usize;
    loop {
        let prompt = if buffer.is_empty() {
            "atlas> "
        } else {
            "   ... "
        };
        let line = match tokio::task::block_in_place(|| input.line(prompt)) {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(()) => {
                buffer.clear();
                continue;
            }
        };
        let trimmed = line.trim();
        // A command line is a command even inside an unfinished statement (as in psql); the
        // statement so far is kept.
        if trimmed.starts_with('\\') {
            input.remember(trimmed);
            match command(ctx, trimmed, printer).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    eprintln!("error: {e}");
                    failed += 1;
                }
            }
            continue;
        }
        if trimmed.is_empty() && buffer.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut buffer);
        input.remember(sql.trim());
        let outcome = tokio::select! {
            r = run_sql(ctx, &sql, printer) => r,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("query cancelled");
                Ok(())
            }
        };
        if let Err(e) = outcome {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    if !buffer.trim().is_empty() {
        eprintln!("warning: ignored an unfinished statement (no closing `;`)");
    }
    input.save();
    if !interactive && failed > 0 {
        return Err(CliError::Reported(failed));
    }
    Ok(())
}
