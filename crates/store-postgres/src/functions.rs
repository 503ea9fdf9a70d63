//! Functions in PostgreSQL: create, look up, list, replace with a version check, delete — each write with its event.
//!
//! The unique index on `name` decides between instances that create or rename at once: a taken name is
//! [`StoreError::DuplicateName`] whoever committed first. A replace locks the function's row, so its version check
//! holds across instances.

use dashboard_core::{ApprovalPolicy, CoreError, EventKind, Function, FunctionId, FunctionSpec, NewEvent};
use dashboard_store::{FunctionKey, StoreError};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::codec::{Columns, OpResult, bigint, json_text, text, text_option, unique_violation, unreadable};
use crate::transaction::{Tx, execute, row, rows};

/// A function's columns in [`from_row`]'s order; a macro so that the statements below are constants.
macro_rules! columns {
    () => {
        "id, name, description, backend, prompt, input_schema, config, timeout_secs, max_concurrency, tags, \
         metadata, version, created_at, updated_at, approval_policy, approval_timeout_secs, max_cost_usd, \
         daily_cost_usd, daily_tokens"
    };
}

const BY_ID: &str = concat!("SELECT ", columns!(), " FROM functions WHERE id = $1");
const BY_ID_FOR_UPDATE: &str = concat!("SELECT ", columns!(), " FROM functions WHERE id = $1 FOR UPDATE");
const BY_NAME: &str = concat!("SELECT ", columns!(), " FROM functions WHERE name = $1");
/// By name in byte order (`COLLATE "C"`), as Rust and SQLite sort, whatever the database's collation.
const LIST: &str = concat!("SELECT ", columns!(), " FROM functions ORDER BY name COLLATE \"C\"");
/// Writes nothing on a taken id or name; the caller then finds out which.
const INSERT: &str = concat!(
    "INSERT INTO functions (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
     ON CONFLICT DO NOTHING"
);
const UPDATE: &str = "UPDATE functions SET name = $2, description = $3, backend = $4, prompt = $5, \
                      input_schema = $6, config = $7, timeout_secs = $8, max_concurrency = $9, tags = $10, \
                      metadata = $11, version = $12, updated_at = $13, approval_policy = $14, \
                      approval_timeout_secs = $15, max_cost_usd = $16, daily_cost_usd = $17, daily_tokens = $18 \
                      WHERE id = $1";
const DELETE: &str = concat!("DELETE FROM functions WHERE id = $1 RETURNING ", columns!());

fn from_row(row: &Row) -> OpResult<Function> {
    let columns = Columns(row);
    Ok(Function {
        id: columns.id(0)?,
        name: columns.get(1)?,
        description: columns.get(2)?,
        backend: columns.get(3)?,
        prompt: columns.get(4)?,
        input_schema: columns.json(5)?,
        config: columns.json(6)?,
        timeout_secs: columns.unsigned_option(7)?,
        max_concurrency: columns.unsigned_option(8)?,
        tags: columns.json(9)?,
        metadata: columns.json(10)?,
        version: columns.unsigned(11)?,
        created_at: columns.get(12)?,
        updated_at: columns.get(13)?,
        approval_policy: policy(&columns, 14)?,
        approval_timeout_secs: columns.unsigned_option(15)?,
        max_cost_usd: columns.get(16)?,
        daily_cost_usd: columns.get(17)?,
        daily_tokens: columns.unsigned_option(18)?,
    })
}

/// A policy stored as its API text (`auto`, `ask`, `deny`), parsed as the API parses it.
fn policy(columns: &Columns<'_>, index: usize) -> OpResult<ApprovalPolicy> {
    let text: String = columns.get(index)?;
    serde_json::from_value(serde_json::Value::String(text))
        .map_err(|error| unreadable("approval_policy", error))
}

/// An optional count as its `bigint` column holds it; one beyond `i64::MAX` (which the spec's validation may let
/// through) is refused as an invalid `field`, not failed as a database error.
fn optional_bigint(field: &str, value: Option<u64>) -> OpResult<Option<i64>> {
    value.map(|value| bigint(field, value)).transpose()
}

pub(crate) async fn get(client: &impl GenericClient, key: &FunctionKey) -> OpResult<Option<Function>> {
    let found = match key {
        FunctionKey::Id(id) => row(client, BY_ID, &[&id.as_uuid()]).await?,
        FunctionKey::Name(name) => row(client, BY_NAME, &[&text(name)]).await?,
    };
    found.as_ref().map(from_row).transpose()
}

pub(crate) async fn list(client: &impl GenericClient) -> OpResult<Vec<Function>> {
    rows(client, LIST, &[]).await?.iter().map(from_row).collect()
}

pub(crate) async fn create(tx: &mut Tx<'_>, function: Function) -> OpResult<Function> {
    let inserted = execute(
        &tx.db,
        INSERT,
        &[
            &function.id.as_uuid(),
            &text(&function.name),
            &text(&function.description),
            &text(&function.backend),
            &text_option(function.prompt.as_deref()),
            &json_text(&function.input_schema)?,
            &json_text(&function.config)?,
            &optional_bigint("timeout_secs", function.timeout_secs)?,
            &function.max_concurrency.map(i64::from),
            &json_text(&function.tags)?,
            &json_text(&function.metadata)?,
            &i64::from(function.version),
            &function.created_at,
            &function.updated_at,
            &function.approval_policy.as_str(),
            &optional_bigint("approval_timeout_secs", function.approval_timeout_secs)?,
            &function.max_cost_usd,
            &function.daily_cost_usd,
            &optional_bigint("daily_tokens", function.daily_tokens)?,
        ],
    )
    .await?;
    if inserted == 0 {
        // The name first, as the contract checks it first; this statement sees what the insert waited for.
        if get(&tx.db, &FunctionKey::Name(function.name.clone())).await?.is_some() {
            return Err(StoreError::DuplicateName { name: function.name }.into());
        }
        let message = format!("a function with id {} exists already", function.id);
        return Err(CoreError::invalid_field("id", message).into());
    }
    tx.record(NewEvent::for_function(EventKind::FunctionCreated, &function));
    Ok(function)
}

pub(crate) async fn update(
    tx: &mut Tx<'_>,
    id: FunctionId,
    spec: FunctionSpec,
    expected_version: Option<u32>,
) -> OpResult<Function> {
    let current = row(&tx.db, BY_ID_FOR_UPDATE, &[&id.as_uuid()]).await?;
    let current = from_row(&current.ok_or_else(|| StoreError::function_not_found(id))?)?;
    if let Some(expected) = expected_version
        && expected != current.version
    {
        return Err(StoreError::VersionMismatch { expected, actual: current.version }.into());
    }
    let next = current.replaced_by(spec)?;
    if next.name != current.name && get(&tx.db, &FunctionKey::Name(next.name.clone())).await?.is_some() {
        return Err(StoreError::DuplicateName { name: next.name }.into());
    }
    let statement = tx.db.prepare_cached(UPDATE).await?;
    let updated = tx
        .db
        .execute(
            &statement,
            &[
                &id.as_uuid(),
                &text(&next.name),
                &text(&next.description),
                &text(&next.backend),
                &text_option(next.prompt.as_deref()),
                &json_text(&next.input_schema)?,
                &json_text(&next.config)?,
                &optional_bigint("timeout_secs", next.timeout_secs)?,
                &next.max_concurrency.map(i64::from),
                &json_text(&next.tags)?,
                &json_text(&next.metadata)?,
                &i64::from(next.version),
                &next.updated_at,
                &next.approval_policy.as_str(),
                &optional_bigint("approval_timeout_secs", next.approval_timeout_secs)?,
                &next.max_cost_usd,
                &next.daily_cost_usd,
                &optional_bigint("daily_tokens", next.daily_tokens)?,
            ],
        )
        .await;
    match updated {
        // Renamed onto a name another instance took after the check above.
        Err(error) if unique_violation(&error).is_some() => {
            return Err(StoreError::DuplicateName { name: next.name }.into());
        }
        other => other?,
    };
    tx.record(NewEvent::for_function(EventKind::FunctionUpdated, &next));
    Ok(next)
}

pub(crate) async fn delete(tx: &mut Tx<'_>, id: FunctionId) -> OpResult<Function> {
    let deleted = row(&tx.db, DELETE, &[&id.as_uuid()]).await?;
    let function = from_row(&deleted.ok_or_else(|| StoreError::function_not_found(id))?)?;
    tx.record(NewEvent::for_function(EventKind::FunctionDeleted, &function));
    Ok(function)
}
