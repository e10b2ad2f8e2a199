//! What the projector announces on each commit, on the PostgreSQL channel [`CHANNEL`]: the
//! position now projected and the rows that changed. Gateways wait on the position to read their
//! own writes and push the rows to their subscribers.

use domain::{OrderId, SessionId, ShowId, TicketId};
use serde::{Deserialize, Serialize};

/// The PostgreSQL `NOTIFY` channel.
pub const CHANNEL: &str = "ticketing_changes";

/// At most this many ids per notification: PostgreSQL refuses payloads of 8000 bytes or more,
/// and an id takes 39 bytes in JSON.
pub const IDS_PER_NOTIFICATION: usize = 150;

/// One notification: a commit at `position` that changed these rows. A commit that changed more
/// rows than one notification holds sends several with the same position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The stream position now projected.
    pub position: u64,
    /// Tickets whose row changed.
    #[serde(default)]
    pub tickets: Vec<TicketId>,
    /// Orders whose row (or payment) changed.
    #[serde(default)]
    pub orders: Vec<OrderId>,
    /// Sessions signed out: gateways end their WebSockets.
    #[serde(default)]
    pub sessions: Vec<SessionId>,
    /// Events (shows) whose availability or details changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ShowId>,
}

impl Notification {
    /// The notifications announcing one commit: at least one (the position alone, when nothing
    /// changed), each within [`IDS_PER_NOTIFICATION`].
    pub fn for_commit(
        position: u64,
        tickets: impl IntoIterator<Item = TicketId>,
        orders: impl IntoIterator<Item = OrderId>,
        sessions: impl IntoIterator<Item = SessionId>,
        events: impl IntoIterator<Item = ShowId>,
    ) -> Vec<Self> {
        let mut out = vec![Self { position, ..Self::default() }];
        let room = |out: &mut Vec<Self>| {
            let last = out.len() - 1;
            if out[last].len() == IDS_PER_NOTIFICATION {
                out.push(Self { position, ..Self::default() });
                return last + 1;
            }
            last
        };
        for id in tickets {
            let at = room(&mut out);
            out[at].tickets.push(id);
        }
        for id in orders {
            let at = room(&mut out);
            out[at].orders.push(id);
        }
        for id in sessions {
            let at = room(&mut out);
            out[at].sessions.push(id);
        }
        for id in events {
            let at = room(&mut out);
            out[at].events.push(id);
        }
        out
    }

    /// How many ids it carries.
    pub fn len(&self) -> usize {
        self.tickets.len() + self.orders.len() + self.sessions.len() + self.events.len()
    }

    /// Whether it only announces a position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload to send.
    ///
    /// # Errors
    /// Never for this type in practice; serde's signature is kept rather than hidden.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// A received payload.
    ///
    /// # Errors
    /// The payload is not a notification (sent by something else, or a newer projector).
    pub fn decode(payload: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ticket(n: u128) -> TicketId {
        TicketId(Uuid::from_u128(n))
    }

    #[test]
    fn a_commit_that_changed_nothing_still_announces_its_position() {
        let sent = Notification::for_commit(7, [], [], [], []);
        assert_eq!(sent, [Notification { position: 7, ..Notification::default() }]);
    }

    #[test]
    fn many_changes_are_split_below_postgres_payload_limit_and_read_back() {
        let tickets: Vec<TicketId> = (0..400).map(ticket).collect();
        let orders = (0..10).map(|n| OrderId(Uuid::from_u128(n)));
        let sent = Notification::for_commit(42, tickets.clone(), orders, [SessionId(Uuid::nil())], []);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent.iter().map(Notification::len).sum::<usize>(), 411);
        for notification in &sent {
            assert_eq!(notification.position, 42);
            assert!(notification.len() <= IDS_PER_NOTIFICATION);
            let payload = notification.encode().unwrap_or_else(|e| panic!("{e}"));
            assert!(payload.len() < 8000, "{} bytes", payload.len());
            assert_eq!(Notification::decode(&payload).ok().as_ref(), Some(notification));
        }
        let received: Vec<TicketId> = sent.iter().flat_map(|n| n.tickets.clone()).collect();
        assert_eq!(received, tickets);
    }

    #[test]
    fn a_payload_that_is_not_a_notification_is_an_error() {
        assert!(Notification::decode("not json").is_err());
        assert!(Notification::decode(r#"{"tickets": []}"#).is_err(), "a position is required");
        assert!(Notification::decode(r#"{"position": 1, "tickets": ["nope"]}"#).is_err());
    }
}
