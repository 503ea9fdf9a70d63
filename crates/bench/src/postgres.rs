//! The bench on PostgreSQL: a fresh database for the run (made on the server `--store` names, dropped at the end),
//! and seeding of finished executions straight into it for the list phase — SQL that knows the store's schema, so a
//! million rows take seconds, not the ten minutes a million store calls would, and no engine runs them (a queued
//! execution in a shared store is work any instance claims).

use tokio_postgres::NoTls;

/// A database made for this run.
pub struct FreshDatabase {
    /// Its name.
    pub name: String,
    /// Its URL (the server's, with this database).
    pub url: String,
    /// The URL of the database `--store` named, to drop this one from.
    server: String,
}

impl FreshDatabase {
    /// Makes `dashboard_bench_<pid>` on the server of `server_url`.
    pub async fn create(server_url: &str) -> Self {
        let name = format!("dashboard_bench_{}", std::process::id());
        let client = connect(server_url).await;
        // Two statements, not one batch: a batch is one transaction, and neither may run inside one.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("the bench may drop its own database of an earlier run");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("the bench may create a database (the role needs CREATEDB)");
        Self { url: with_database(server_url, &name), name, server: server_url.to_owned() }
    }

    /// Drops it (the instances have stopped).
    pub async fn drop_database(self) {
        let client = connect(&self.server).await;
        if let Err(error) =
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await
        {
            eprintln!("could not drop database {}: {error}", self.name);
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.expect("the bench reaches PostgreSQL");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split_once('/').map_or(rest, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// Inserts `count` succeeded executions of function `function` (by name and id) into the database at `url`, older
/// than anything the run makes: UUID v7 ids built from times a day or more in the past, so listing newest first
/// pages through them as through any others.
pub async fn seed_finished(url: &str, function: &dashboard_core::Function, count: u64) {
    const BATCH: u64 = 100_000;
    let client = connect(url).await;
    let base_ms = (time::OffsetDateTime::now_utc().unix_timestamp() - 86_400) * 1000 - count as i64;
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let statement = format!(
            "INSERT INTO executions (id, function, function_id, function_version, backend, input, status, output, \
                 attempt, created_at, started_at, finished_at) \
             SELECT (lpad(to_hex($1::bigint + i), 12, '0') || '7' || lpad(to_hex(i % 4096), 3, '0') || '8' \
                     || lpad(to_hex(i), 15, '0'))::uuid, \
                    $2, $3, 1, 'demo', '{{\"steps\":0}}', 'succeeded', '{{\"steps\":0}}', 1, \
                    to_timestamp(($1::bigint + i) / 1000.0), to_timestamp(($1::bigint + i) / 1000.0), \
                    to_timestamp(($1::bigint + i) / 1000.0) \
             FROM generate_series({start}::bigint, {end}::bigint) AS i",
            start = done,
            end = done + n - 1,
        );
        client
            .execute(&statement, &[&base_ms, &function.name, &function.id.as_uuid()])
            .await
            .expect("the seed rows go in");
        done += n;
    }
    client.batch_execute("ANALYZE executions").await.expect("ANALYZE");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_and_the_rest_kept() {
        assert_eq!(with_database("postgres://u:p@h:5/postgres", "x"), "postgres://u:p@h:5/x");
        assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
        assert_eq!(with_database("postgres://h/db?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
    }
}
