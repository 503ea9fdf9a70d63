//! Login sessions: a random id in an HttpOnly, SameSite=Strict cookie, mapped in memory to the token that signed in
//! and the session's CSRF token. Sessions end at logout, after [`SESSION_HOURS`], or when the server restarts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashboard_backend_api::Principal;

/// How long a login lasts.
pub(crate) const SESSION_HOURS: u64 = 12;
/// The most sessions kept; past it, the oldest make room (each login is one; a flood of logins needs tokens).
const MAX_SESSIONS: usize = 10_000;
/// The most sessions one token may hold: past it, that token's oldest makes room, so that no token's logins can push
/// out the sessions of the others.
const MAX_SESSIONS_PER_TOKEN: usize = 100;

/// One signed-in browser.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// Who signed in.
    pub principal: Principal,
    /// The token its forms carry.
    pub csrf: String,
    expires: Instant,
}

/// The live sessions, by id.
#[derive(Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `principal`; returns its id (the cookie's value).
    pub(crate) fn start(&self, principal: Principal) -> String {
        let id = super::random_token();
        let session = Session {
            principal,
            csrf: super::random_token(),
            expires: Instant::now() + Duration::from_secs(SESSION_HOURS * 3600),
        };
        let mut sessions = self.by_id.lock().expect("sessions lock poisoned");
        let now = Instant::now();
        sessions.retain(|_, session| session.expires > now);
        let name = session.principal.name.clone();
        let of_this_token = || sessions.iter().filter(|(_, other)| other.principal.name == name);
        if of_this_token().count() >= MAX_SESSIONS_PER_TOKEN
            && let Some(oldest) =
                of_this_token().min_by_key(|(_, other)| other.expires).map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) =
                sessions.iter().min_by_key(|(_, session)| session.expires).map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), session);
        id
    }

    /// The session with this id, unless it has expired.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let sessions = self.by_id.lock().expect("sessions lock poisoned");
        sessions.get(id).filter(|session| session.expires > Instant::now()).cloned()
    }

    /// Ends the session with this id.
    pub(crate) fn end(&self, id: &str) {
        self.by_id.lock().expect("sessions lock poisoned").remove(id);
    }
}

#[cfg(test)]
mod tests {
    use dashboard_backend_api::Scope;

    use super::*;

    #[test]
    fn a_session_lives_until_it_is_ended() {
        let sessions = Sessions::default();
        let id = sessions.start(Principal::anonymous());
        let session = sessions.get(&id).expect("a live session");
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, id, "the CSRF token is not the session id");
        assert!(sessions.get("someone else's").is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn one_token_cannot_push_out_the_sessions_of_another() {
        let sessions = Sessions::default();
        let admin = sessions.start(Principal::token("admin", Scope::Admin, None));
        let flood: Vec<String> = (0..MAX_SESSIONS_PER_TOKEN + 5)
            .map(|_| sessions.start(Principal::token("viewer", Scope::Read, None)))
            .collect();
        assert!(sessions.get(&admin).is_some(), "the admin's session outlived the viewer's logins");
        assert!(sessions.get(&flood[0]).is_none(), "the viewer's oldest session made room");
        assert!(sessions.get(&flood[flood.len() - 1]).is_some());
    }
}
