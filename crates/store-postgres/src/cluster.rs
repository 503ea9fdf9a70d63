//! [`Cluster`](dashboard_store::Cluster) for [`PostgresStore`](crate::PostgresStore): claims under leases,
//! heartbeats, the instances, cancels and decisions signalled between instances, login sessions, the shared secret.
