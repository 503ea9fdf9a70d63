//! The schema: the append-only migrations in `migrations/`, applied at connect under an advisory lock.

/// Every migration, in order; the table `dashboard_schema` holds how many of them the database has. Append only.
pub(crate) const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_schema.sql")];

/// The schema version this build writes: the number of migrations.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;
