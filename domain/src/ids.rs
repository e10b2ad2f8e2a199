//! Identifiers. All are UUIDs generated at the edge (never inside the domain).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies an account (a buyer, seller or admin).
    AccountId
);
id_type!(
    /// Identifies a ticket listing.
    TicketId
);
id_type!(
    /// Identifies an order (a hold on one ticket).
    OrderId
);
id_type!(
    /// Identifies one payment attempt for an order.
    PaymentId
);
id_type!(
    /// Identifies one signed-in session (the JWT `jti`).
    SessionId
);
id_type!(
    /// Identifies an organiser's show: an event on sale with ticket types and reserved seats
    /// (the API's `Event`; the domain says "show" so as not to be confused with stored events).
    ShowId
);
id_type!(
    /// Identifies one ticket type (a general-admission tier) of a show.
    TicketTypeId
);

/// Namespace for identifiers derived from client idempotency keys (UUID v5).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x5d1c_7a0e_8f3b_4c2d_9e6a_1b0f_2c3d_4e5f);

impl OrderId {
    /// The order id a buyer's idempotency key stands for on one ticket: the same buyer, ticket and
    /// key always name the same order, so a retried `createOrder` finds the order it already
    /// placed. The ticket is part of the name, so one key used on two tickets can never make two
    /// holds share an order id (the gateway refuses such a reuse; this holds even after the key's
    /// record has aged out).
    pub fn for_idempotency_key(buyer: AccountId, ticket: TicketId, key: &str) -> Self {
        let mut scope = Vec::with_capacity(32);
        scope.extend_from_slice(buyer.as_uuid().as_bytes());
        scope.extend_from_slice(ticket.as_uuid().as_bytes());
        Self(derive(b"order", &Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, &scope), key))
    }
}

impl OrderId {
    /// The order id a buyer's idempotency key stands for on one show, as
    /// [`OrderId::for_idempotency_key`] is for a ticket.
    pub fn for_show_idempotency_key(buyer: AccountId, show: ShowId, key: &str) -> Self {
        let mut scope = Vec::with_capacity(33);
        scope.extend_from_slice(buyer.as_uuid().as_bytes());
        scope.extend_from_slice(show.as_uuid().as_bytes());
        scope.push(b's');
        Self(derive(b"order", &Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, &scope), key))
    }
}

impl TicketTypeId {
    /// The id of a show's `index`th ticket type (from 0): derived, so that deciding a show's
    /// creation needs no randomness and replays to the same ids.
    pub fn of(show: ShowId, index: usize) -> Self {
        Self(derive(b"ticket-type", show.as_uuid(), &index.to_string()))
    }
}

impl PaymentId {
    /// The payment id an order's idempotency key stands for, so a retried `payOrder` with the same
    /// key finds the first attempt instead of charging again.
    pub fn for_idempotency_key(order: OrderId, key: &str) -> Self {
        Self(derive(b"payment", order.as_uuid(), key))
    }
}

fn derive(kind: &[u8], scope: &Uuid, key: &str) -> Uuid {
    let mut name = Vec::with_capacity(kind.len() + 17 + key.len());
    name.extend_from_slice(kind);
    name.push(b':');
    name.extend_from_slice(scope.as_bytes());
    name.extend_from_slice(key.as_bytes());
    Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_on_the_same_ticket_names_the_same_order_and_nothing_else_does() {
        let buyer = AccountId(Uuid::from_u128(1));
        let other = AccountId(Uuid::from_u128(2));
        let (t1, t2) = (TicketId(Uuid::from_u128(3)), TicketId(Uuid::from_u128(4)));
        let a = OrderId::for_idempotency_key(buyer, t1, "k1");
        assert_eq!(a, OrderId::for_idempotency_key(buyer, t1, "k1"));
        assert_ne!(a, OrderId::for_idempotency_key(buyer, t1, "k2"));
        assert_ne!(a, OrderId::for_idempotency_key(other, t1, "k1"));
        assert_ne!(a, OrderId::for_idempotency_key(buyer, t2, "k1"), "one key on two tickets names two orders");
    }

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = TicketId(Uuid::from_u128(42));
        assert_eq!(id.to_string().parse::<TicketId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<TicketId>().is_err());
    }
}
