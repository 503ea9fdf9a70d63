//! The engine's integration tests live in `tests/`: they run `dashboard-engine` on the demo backend and the SQLite
//! store, which the engine itself must not depend on, not even for its tests (`cargo tree -p dashboard-engine` lists
//! no adapter and no database). This library is empty.
