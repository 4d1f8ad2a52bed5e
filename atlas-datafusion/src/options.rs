//! Session options of the extension: `SET atlas.<option> = …`.

use std::any::Any;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;

use crate::layout::TypeConflicts;

/// The `atlas.*` options of a session. [`crate::register_atlas`] and the store registration
/// helpers add them to the session, so `SET atlas.type_conflicts = 'exclude'` works; a session
/// without them behaves as with the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtlasOptions {
    /// What a table does with datasets whose value or coordinate has a type its column
    /// cannot hold: `null` (default), `exclude` or `error`.
    pub type_conflicts: TypeConflicts,
    /// Whether an inner join of variable tables on `dataset` and every index column is
    /// planned as one grid scan ([`crate::GridJoins`]; default true).
    pub grid_joins: bool,
    /// In a distributed session, the elements (values a scan's units of work cover) that
    /// justify one more task for a scan (default 1 Mi): a scan of fewer runs as one task, one
    /// of 4 × this on up to four workers.
    pub elements_per_task: u64,
}

/// Default of [`AtlasOptions::elements_per_task`].
pub const ELEMENTS_PER_TASK: u64 = 1 << 20;

impl Default for AtlasOptions {
    fn default() -> Self {
        AtlasOptions {
            type_conflicts: TypeConflicts::default(),
            grid_joins: true,
            elements_per_task: ELEMENTS_PER_TASK,
        }
    }
}

impl ConfigExtension for AtlasOptions {
    const PREFIX: &'static str = "atlas";
}

impl ExtensionOptions for AtlasOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "type_conflicts" => {
                self.type_conflicts = value.parse()?;
                Ok(())
            }
            "grid_joins" => {
                self.grid_joins = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "on" | "1" => true,
                    "false" | "off" | "0" => false,
                    other => {
                        return Err(DataFusionError::Configuration(format!(
                            "atlas.grid_joins is true or false, not {other:?}"
                        )));
                    }
                };
                Ok(())
            }
            "elements_per_task" => {
                self.elements_per_task = match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(DataFusionError::Configuration(format!(
                            "atlas.elements_per_task is a positive whole number, not {value:?}"
                        )));
                    }
                };
                Ok(())
            }
            other => Err(DataFusionError::Configuration(format!(
                "no option atlas.{other} (the options are: atlas.type_conflicts, \
                 atlas.grid_joins, atlas.elements_per_task)"
            ))),
        }
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: "atlas.type_conflicts".into(),
                value: Some(self.type_conflicts.to_string()),
                description: "What a table does with datasets whose value or coordinate has a type \
                          its column cannot hold: 'null' (their rows stay, NULL in that column), \
                          'exclude' (they are left out) or 'error'. SELECT * FROM _conflicts \
                          lists them.",
            },
            ConfigEntry {
                key: "atlas.grid_joins".into(),
                value: Some(self.grid_joins.to_string()),
                description: "Whether an inner join of variable tables of one store on dataset \
                              and every index column is planned as one grid scan (the variables \
                              read in lockstep, no hash join).",
            },
            ConfigEntry {
                key: "atlas.elements_per_task".into(),
                value: Some(self.elements_per_task.to_string()),
                description: "In a distributed session, the values a scan reads that justify one \
                              more task (worker) for it.",
            },
        ]
    }
}

impl AtlasOptions {
    /// The `atlas.type_conflicts` of a session's options (the default when the session lacks
    /// the `atlas.*` options).
    pub fn type_conflicts_of(options: &ConfigOptions) -> TypeConflicts {
        options
            .extensions
            .get::<AtlasOptions>()
            .map(|o| o.type_conflicts)
            .unwrap_or_default()
    }

    /// The `atlas.grid_joins` of a session's options (true when the session lacks them).
    pub fn grid_joins_of(options: &ConfigOptions) -> bool {
        options
            .extensions
            .get::<AtlasOptions>()
            .is_none_or(|o| o.grid_joins)
    }

    /// The `atlas.elements_per_task` of a session's options (the default when it lacks them).
    pub fn elements_per_task_of(options: &ConfigOptions) -> u64 {
        options
            .extensions
            .get::<AtlasOptions>()
            .map_or(ELEMENTS_PER_TASK, |o| o.elements_per_task)
    }

    /// Adds the options to `ctx` with their defaults, unless it has them already.
    pub fn register(ctx: &SessionContext) {
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        if options.extensions.get::<AtlasOptions>().is_none() {
            options.extensions.insert(AtlasOptions::default());
        }
    }
}
