//! Columns and errors: how values cross between the dashboard's types and PostgreSQL's, and how a driver error
//! becomes a [`StoreError`](dashboard_store::StoreError).
