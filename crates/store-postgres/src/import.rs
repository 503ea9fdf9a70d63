//! `agent-dashboard migrate-store`: copies everything a SQLite file holds into an empty PostgreSQL database.
