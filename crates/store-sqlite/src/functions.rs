//! Functions in SQLite: create, look up, list, replace with a version check, delete — each write with its event.

use dashboard_core::{ApprovalPolicy, CoreError, EventKind, Function, FunctionId, NewEvent};
use dashboard_store::{FunctionKey, Recorded, StoreError};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{Json, OpResult, SqlTime, is_unique_violation, parsed, text};
use crate::events::record;
use crate::writer::WriteConnection;

const COLUMNS: &str = "id, name, description, backend, prompt, input_schema, config, timeout_secs, max_concurrency, \
                       tags, metadata, version, created_at, updated_at, approval_policy, \
                       approval_timeout_secs, max_cost_usd, daily_cost_usd, daily_tokens";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Function> {
    Ok(Function {
        id: parsed(row, 0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        backend: row.get(3)?,
        prompt: row.get(4)?,
        input_schema: row.get::<_, Json<_>>(5)?.0,
        config: row.get::<_, Json<_>>(6)?.0,
        timeout_secs: row.get(7)?,
        max_concurrency: row.get(8)?,
        tags: row.get::<_, Json<_>>(9)?.0,
        metadata: row.get::<_, Json<_>>(10)?.0,
        version: row.get(11)?,
        created_at: row.get::<_, SqlTime>(12)?.0,
        updated_at: row.get::<_, SqlTime>(13)?.0,
        approval_policy: policy_from_row(row, 14)?,
        approval_timeout_secs: row.get(15)?,
        max_cost_usd: row.get(16)?,
        daily_cost_usd: row.get(17)?,
        daily_tokens: row.get(18)?,
    })
}

/// Reads a policy stored as its API text (`auto`, `ask`, `deny`), parsed as the API parses it.
fn policy_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<ApprovalPolicy> {
    let text: String = row.get(index)?;
    serde_json::from_value(serde_json::Value::String(text))
        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error)))
}

/// `daily_tokens` as its column holds it. SQLite's integers are signed 64-bit: a budget above `i64::MAX` tokens (which
/// the spec's validation lets through) is refused as an invalid field, not failed as a database error.
fn daily_tokens_column(daily_tokens: Option<u64>) -> OpResult<Option<i64>> {
    let column = daily_tokens.map(i64::try_from).transpose().map_err(|_| {
        CoreError::invalid_field("daily_tokens", format!("must be at most {} (the store's limit)", i64::MAX))
    })?;
    Ok(column)
}

pub(super) fn get(connection: &Connection, key: &FunctionKey) -> OpResult<Option<Function>> {
    let function = match key {
        FunctionKey::Id(id) => connection
            .prepare_cached(&format!("SELECT {COLUMNS} FROM functions WHERE id = ?1"))?
            .query_row([text(id)], from_row)
            .optional()?,
        FunctionKey::Name(name) => connection
            .prepare_cached(&format!("SELECT {COLUMNS} FROM functions WHERE name = ?1"))?
            .query_row([name], from_row)
            .optional()?,
    };
    Ok(function)
}

pub(super) fn list(connection: &Connection) -> OpResult<Vec<Function>> {
    let mut statement =
        connection.prepare_cached(&format!("SELECT {COLUMNS} FROM functions ORDER BY name"))?;
    let functions = statement.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(functions)
}

pub(super) fn create(connection: &WriteConnection<'_>, function: Function) -> OpResult<Recorded<Function>> {
    if get(connection, &FunctionKey::Name(function.name.clone()))?.is_some() {
        return Err(StoreError::DuplicateName { name: function.name }.into());
    }
    if get(connection, &FunctionKey::Id(function.id))?.is_some() {
        let message = format!("a function with id {} exists already", function.id);
        return Err(CoreError::invalid_field("id", message).into());
    }
    let inserted = connection
        .prepare_cached(&format!(
            "INSERT INTO functions ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ))?
        .execute(params![
            text(function.id),
            function.name,
            function.description,
            function.backend,
            function.prompt,
            Json(&function.input_schema),
            Json(&function.config),
            function.timeout_secs,
            function.max_concurrency,
            Json(&function.tags),
            Json(&function.metadata),
            function.version,
            SqlTime(function.created_at),
            SqlTime(function.updated_at),
            function.approval_policy.as_str(),
            function.approval_timeout_secs,
            function.max_cost_usd,
            function.daily_cost_usd,
            daily_tokens_column(function.daily_tokens)?,
        ]);
    match inserted {
        Err(error) if is_unique_violation(&error) => {
            return Err(StoreError::DuplicateName { name: function.name }.into());
        }
        other => other?,
    };
    let event = record(connection, NewEvent::for_function(EventKind::FunctionCreated, &function))?;
    Ok(Recorded { value: function, event })
}

pub(super) fn update(
    connection: &WriteConnection<'_>,
    id: FunctionId,
    spec: dashboard_core::FunctionSpec,
    expected_version: Option<u32>,
) -> OpResult<Recorded<Function>> {
    let current = get(connection, &FunctionKey::Id(id))?.ok_or_else(|| StoreError::function_not_found(id))?;
    if let Some(expected) = expected_version
        && expected != current.version
    {
        return Err(StoreError::VersionMismatch { expected, actual: current.version }.into());
    }
    let next = current.replaced_by(spec)?;
    if next.name != current.name && get(connection, &FunctionKey::Name(next.name.clone()))?.is_some() {
        return Err(StoreError::DuplicateName { name: next.name }.into());
    }
    let updated = connection
        .prepare_cached(
            "UPDATE functions SET name = ?2, description = ?3, backend = ?4, prompt = ?5, input_schema = ?6, \
             config = ?7, timeout_secs = ?8, max_concurrency = ?9, tags = ?10, metadata = ?11, version = ?12, \
             updated_at = ?13, approval_policy = ?14, approval_timeout_secs = ?15, max_cost_usd = ?16, \
             daily_cost_usd = ?17, daily_tokens = ?18 WHERE id = ?1",
        )?
        .execute(params![
            text(id),
            next.name,
            next.description,
            next.backend,
            next.prompt,
            Json(&next.input_schema),
            Json(&next.config),
            next.timeout_secs,
            next.max_concurrency,
            Json(&next.tags),
            Json(&next.metadata),
            next.version,
            SqlTime(next.updated_at),
            next.approval_policy.as_str(),
            next.approval_timeout_secs,
            next.max_cost_usd,
            next.daily_cost_usd,
            daily_tokens_column(next.daily_tokens)?,
        ]);
    match updated {
        Err(error) if is_unique_violation(&error) => {
            return Err(StoreError::DuplicateName { name: next.name }.into());
        }
        other => other?,
    };
    let event = record(connection, NewEvent::for_function(EventKind::FunctionUpdated, &next))?;
    Ok(Recorded { value: next, event })
}

pub(super) fn delete(connection: &WriteConnection<'_>, id: FunctionId) -> OpResult<Recorded<Function>> {
    let function =
        get(connection, &FunctionKey::Id(id))?.ok_or_else(|| StoreError::function_not_found(id))?;
    connection.prepare_cached("DELETE FROM functions WHERE id = ?1")?.execute([text(id)])?;
    let event = record(connection, NewEvent::for_function(EventKind::FunctionDeleted, &function))?;
    Ok(Recorded { value: function, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_is_read_back_as_written() {
        let connection = Connection::open_in_memory().expect("an in-memory database");
        for policy in [ApprovalPolicy::Auto, ApprovalPolicy::Ask, ApprovalPolicy::Deny] {
            let back = connection
                .query_row("SELECT ?1", [policy.as_str()], |row| policy_from_row(row, 0))
                .expect("a policy");
            assert_eq!(back, policy);
        }
        let unknown = connection.query_row("SELECT 'maybe'", [], |row| policy_from_row(row, 0));
        assert!(unknown.is_err(), "got {unknown:?}");
    }

    #[test]
    fn a_daily_tokens_budget_beyond_what_sqlite_holds_is_an_invalid_field() {
        let migrated = crate::schema::migrated();
        let connection = WriteConnection::new(&migrated, &[]);
        let mut spec = dashboard_core::FunctionSpec::new("alpha", "demo");
        // Validation refuses it first; a function built past it is refused by the store all the same.
        let mut function = Function::create(spec.clone()).expect("a valid spec");
        function.daily_tokens = Some(u64::MAX);
        let refused = create(&connection, function).map_err(|error| error.0);
        assert!(
            matches!(&refused, Err(StoreError::Invalid(error)) if error.to_string().contains("daily_tokens"))
        );

        spec.daily_tokens = Some(i64::MAX as u64);
        let function = Function::create(spec).expect("a valid spec");
        let created =
            create(&connection, function).map_err(|error| error.0).expect("the largest budget it holds");
        let read = get(&connection, &FunctionKey::Id(created.value.id)).map_err(|error| error.0);
        assert_eq!(read.expect("a read").and_then(|function| function.daily_tokens), Some(i64::MAX as u64));
    }
}
