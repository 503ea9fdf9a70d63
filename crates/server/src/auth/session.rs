//! Login sessions: a random id in an HttpOnly, SameSite=Strict cookie, mapped to the token that signed in and the
//! session's CSRF token. A dashboard on its own keeps them in memory (lost when it restarts); instances that share a
//! PostgreSQL store keep them there ([`Cluster`]'s logins, keyed by the SHA-256 of the id, never the id itself), so a
//! browser signed in on one instance is signed in on all. Sessions end at logout, after [`SESSION_HOURS`], or when
//! their token leaves the configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard_store::{Cluster, LoginRecord, StoreError};

/// How long a login lasts.
pub(crate) const SESSION_HOURS: u64 = 12;
/// The most sessions kept in memory; past it, the oldest make room (each login is one; a flood of logins needs
/// tokens).
const MAX_SESSIONS: usize = 10_000;
/// The most sessions one token may hold: past it, that token's oldest makes room, so that no token's logins can push
/// out the sessions of the others. (A shared store keeps the same bound: [`Cluster::create_login`].)
const MAX_SESSIONS_PER_TOKEN: usize = 100;

/// A login as kept: the name of the token that signed in and the CSRF token its forms carry. What the session may do
/// is that token's as configured now (`Auth::session`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Login {
    /// The name of the token that signed in.
    pub token_name: String,
    /// The token its forms carry.
    pub csrf: String,
}

/// One login in memory.
pub(crate) struct MemoryLogin {
    login: Login,
    expires: Instant,
}

/// Where the live sessions are kept.
pub(crate) enum Sessions {
    /// In this process, by id: one dashboard alone.
    Memory(Mutex<HashMap<String, MemoryLogin>>),
    /// In the store the instances share, by the SHA-256 of the id.
    Shared(Arc<dyn Cluster>),
}

impl Default for Sessions {
    fn default() -> Self {
        Self::Memory(Mutex::default())
    }
}

impl Sessions {
    /// Sessions kept in the store that `cluster` is the shared side of.
    pub(crate) fn shared(cluster: Arc<dyn Cluster>) -> Self {
        Self::Shared(cluster)
    }

    /// Starts a session for the token named `token_name`; returns its id (the cookie's value).
    pub(crate) async fn start(&self, token_name: &str) -> Result<String, StoreError> {
        let id = super::random_token();
        let login = Login { token_name: token_name.to_owned(), csrf: super::random_token() };
        let lifetime = Duration::from_secs(SESSION_HOURS * 3600);
        match self {
            Self::Memory(sessions) => {
                let mut sessions = sessions.lock().expect("sessions lock poisoned");
                insert(&mut sessions, id.clone(), MemoryLogin { login, expires: Instant::now() + lifetime });
            }
            Self::Shared(cluster) => {
                let record = LoginRecord {
                    id_hash: id_hash(&id),
                    token_name: login.token_name,
                    csrf: login.csrf,
                    expires_at: dashboard_core::now() + lifetime,
                };
                cluster.create_login(&record).await?;
            }
        }
        Ok(id)
    }

    /// The session with this id, unless it has expired or never was.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Login>, StoreError> {
        match self {
            Self::Memory(sessions) => {
                let sessions = sessions.lock().expect("sessions lock poisoned");
                let live = sessions.get(id).filter(|session| session.expires > Instant::now());
                Ok(live.map(|session| session.login.clone()))
            }
            Self::Shared(cluster) => {
                let record = cluster.get_login(&id_hash(id)).await?;
                Ok(record.map(|record| Login { token_name: record.token_name, csrf: record.csrf }))
            }
        }
    }

    /// Ends the session with this id (nothing to do when there is none).
    pub(crate) async fn end(&self, id: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(sessions) => {
                sessions.lock().expect("sessions lock poisoned").remove(id);
                Ok(())
            }
            Self::Shared(cluster) => cluster.delete_login(&id_hash(id)).await,
        }
    }
}

/// Adds a login to the sessions in memory, first dropping the expired ones and making room: the token's oldest
/// session past [`MAX_SESSIONS_PER_TOKEN`], the oldest of all past [`MAX_SESSIONS`].
fn insert(sessions: &mut HashMap<String, MemoryLogin>, id: String, session: MemoryLogin) {
    let now = Instant::now();
    sessions.retain(|_, session| session.expires > now);
    let name = session.login.token_name.clone();
    let of_this_token = || sessions.iter().filter(|(_, other)| other.login.token_name == name);
    if of_this_token().count() >= MAX_SESSIONS_PER_TOKEN
        && let Some(oldest) = of_this_token().min_by_key(|(_, other)| other.expires).map(|(id, _)| id.clone())
    {
        sessions.remove(&oldest);
    }
    if sessions.len() >= MAX_SESSIONS
        && let Some(oldest) =
            sessions.iter().min_by_key(|(_, session)| session.expires).map(|(id, _)| id.clone())
    {
        sessions.remove(&oldest);
    }
    sessions.insert(id, session);
}

/// What the store keeps of a session id: its SHA-256 in lowercase hex, so that reading the database gives no one a
/// cookie to sign in with.
fn id_hash(id: &str) -> String {
    super::hex(&super::sha256(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_lives_until_it_is_ended() {
        let sessions = Sessions::default();
        let id = sessions.start("admin").await.expect("memory");
        let login = sessions.get(&id).await.expect("memory").expect("a live session");
        assert_eq!((login.token_name.as_str(), login.csrf.len()), ("admin", 64));
        assert_ne!(login.csrf, id, "the CSRF token is not the session id");
        assert!(sessions.get("someone else's").await.expect("memory").is_none());
        sessions.end(&id).await.expect("memory");
        assert!(sessions.get(&id).await.expect("memory").is_none());
    }

    #[tokio::test]
    async fn one_token_cannot_push_out_the_sessions_of_another() {
        let sessions = Sessions::default();
        let admin = sessions.start("admin").await.expect("memory");
        let mut flood = Vec::new();
        for _ in 0..MAX_SESSIONS_PER_TOKEN + 5 {
            flood.push(sessions.start("viewer").await.expect("memory"));
        }
        let is_live = async |id: &str| sessions.get(id).await.expect("memory").is_some();
        assert!(is_live(&admin).await, "the admin's session outlived the viewer's logins");
        assert!(!is_live(&flood[0]).await, "the viewer's oldest session made room");
        assert!(is_live(&flood[flood.len() - 1]).await);
    }

    #[test]
    fn the_store_sees_the_hash_of_an_id_never_the_id() {
        let hash = id_hash("abc");
        assert_eq!(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
