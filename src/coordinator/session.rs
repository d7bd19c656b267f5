//! The session table at run time: each live session's negotiated timeout, its expiry deadline
//! (pushed back by every packet from its client) and the connection it is attached to, if any.
//! The durable side of sessions (id, timeout, password) lives in the database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A connection's id, unique for the life of the server.
pub type ConnectionId = u64;

#[derive(Debug, Clone)]
struct LiveSession {
    timeout: Duration,
    deadline: Instant,
    connection: Option<ConnectionId>,
}

#[derive(Debug)]
pub struct Sessions {
    live: HashMap<i64, LiveSession>,
    next_session_id: i64,
}

impl Sessions {
    /// A table holding recovered sessions, each given a full timeout from `now` to come back.
    pub fn new(recovered: impl IntoIterator<Item = (i64, i32)>, now: Instant, now_ms: i64) -> Self {
        let mut live = HashMap::new();
        let mut highest = 0;
        for (session_id, timeout_ms) in recovered {
            let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
            live.insert(
                session_id,
                LiveSession {
                    timeout,
                    deadline: now + timeout,
                    connection: None,
                },
            );
            highest = highest.max(session_id);
        }
        // ZooKeeper's scheme: milliseconds in the middle bits, server id 0 in the top byte.
        let time_based = ((now_ms as u64) << 24 >> 8) as i64;
        Sessions {
            live,
            next_session_id: time_based.max(highest + 1),
        }
    }

    /// A fresh session id.
    pub fn next_id(&mut self) -> i64 {
        let id = self.next_session_id;
        self.next_session_id += 1;
        id
    }

    pub fn is_live(&self, session_id: i64) -> bool {
        self.live.contains_key(&session_id)
    }

    /// Starts a session attached to `connection`.
    pub fn open(
        &mut self,
        session_id: i64,
        timeout_ms: i32,
        now: Instant,
        connection: ConnectionId,
    ) {
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        self.live.insert(
            session_id,
            LiveSession {
                timeout,
                deadline: now + timeout,
                connection: Some(connection),
            },
        );
    }

    /// Attaches a reconnecting session to `connection`; returns the connection it had before.
    pub fn attach(
        &mut self,
        session_id: i64,
        connection: ConnectionId,
        now: Instant,
    ) -> Option<ConnectionId> {
        let session = self.live.get_mut(&session_id)?;
        session.deadline = now + session.timeout;
        session
            .connection
            .replace(connection)
            .filter(|old| *old != connection)
    }

    /// Detaches `connection` from the session if it is still the session's connection.
    pub fn detach(&mut self, session_id: i64, connection: ConnectionId) -> bool {
        match self.live.get_mut(&session_id) {
            Some(session) if session.connection == Some(connection) => {
                session.connection = None;
                true
            }
            _ => false,
        }
    }

    /// The client spoke: the session lives another full timeout.
    pub fn touch(&mut self, session_id: i64, now: Instant) {
        if let Some(session) = self.live.get_mut(&session_id) {
            session.deadline = now + session.timeout;
        }
    }

    pub fn connection_of(&self, session_id: i64) -> Option<ConnectionId> {
        self.live
            .get(&session_id)
            .and_then(|session| session.connection)
    }

    /// Removes a session; returns its connection, if attached.
    pub fn remove(&mut self, session_id: i64) -> Option<ConnectionId> {
        self.live
            .remove(&session_id)
            .and_then(|session| session.connection)
    }

    /// Sessions whose deadline has passed, in id order.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let mut expired: Vec<i64> = self
            .live
            .iter()
            .filter(|(_, session)| session.deadline <= now)
            .map(|(session_id, _)| *session_id)
            .collect();
        expired.sort_unstable();
        expired
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_postpones_expiry_and_recovered_sessions_get_a_full_timeout() {
        let start = Instant::now();
        let mut sessions = Sessions::new([(5, 1000)], start, 1);
        let id = sessions.next_id();
        assert!(id > 5);
        sessions.open(id, 500, start, 1);
        assert!(sessions.expired(start).is_empty());
        sessions.touch(id, start + Duration::from_millis(400));
        assert_eq!(
            sessions.expired(start + Duration::from_millis(600)),
            Vec::<i64>::new()
        );
        assert_eq!(
            sessions.expired(start + Duration::from_millis(1000)),
            vec![5, id]
        );
    }

    #[test]
    fn reattach_reports_the_old_connection_and_stale_detach_is_ignored() {
        let now = Instant::now();
        let mut sessions = Sessions::new([], now, 1);
        let id = sessions.next_id();
        sessions.open(id, 1000, now, 1);
        assert_eq!(sessions.attach(id, 2, now), Some(1));
        assert!(!sessions.detach(id, 1));
        assert_eq!(sessions.connection_of(id), Some(2));
        assert!(sessions.detach(id, 2));
        assert_eq!(sessions.connection_of(id), None);
    }
}
