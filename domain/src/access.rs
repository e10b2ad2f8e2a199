//! Who may do what: every authorization rule of accounts, tickets and orders, in one place.
//!
//! The aggregates' `decide` refuses with these rules; the gateway checks reads (orders,
//! histories, personal data) with them and answers `viewerCanEdit`, `viewerCanCancel` and
//! `viewerCanPay` with them; the web app shows its buttons from those fields. Each predicate takes
//! only the facts it needs, so a read-model row answers it as well as an aggregate's state does
//! ([`Ticket::access`], [`Order::access`]).

use crate::listing::order::{Order, OrderStatus};
use crate::listing::ticket::{Ticket, TicketStatus};
use crate::{AccountId, Actor, Timestamp};

/// What the rules about a ticket need to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketAccess {
    /// Who sells it.
    pub seller: AccountId,
    /// Where it is in its life.
    pub status: TicketStatus,
}

impl TicketAccess {
    /// Its seller or an admin: who may edit it and read its history.
    pub fn is_managed_by(&self, actor: &Actor) -> bool {
        self.seller == actor.id || actor.is_admin
    }

    /// Whether it is free: it can be held, and edited (a held or sold ticket is someone's deal).
    pub fn is_available(&self) -> bool {
        self.status == TicketStatus::Available
    }

    /// Whether `actor` may change its title or price now.
    pub fn may_edit(&self, actor: &Actor) -> bool {
        self.is_managed_by(actor) && self.is_available()
    }

    /// Whether `buyer` is its seller, who may not hold or buy it.
    pub fn is_sold_by(&self, buyer: AccountId) -> bool {
        self.seller == buyer
    }

    /// Whether `buyer` may hold it now: anyone but its seller, while it is available.
    pub fn may_hold(&self, buyer: AccountId) -> bool {
        !self.is_sold_by(buyer) && self.is_available()
    }

    /// Whether `actor` may read its event history.
    pub fn may_read_history(&self, actor: &Actor) -> bool {
        self.is_managed_by(actor)
    }
}

/// What the rules about a show (the API's event) need to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShowAccess {
    /// Who organises it.
    pub organizer: AccountId,
}

impl ShowAccess {
    /// Its organiser or an admin: who may edit it and read its history.
    pub fn is_managed_by(&self, actor: &Actor) -> bool {
        self.organizer == actor.id || actor.is_admin
    }

    /// Whether `actor` may change its title, venue or start time.
    pub fn may_edit(&self, actor: &Actor) -> bool {
        self.is_managed_by(actor)
    }

    /// Whether `actor` may read its event history.
    pub fn may_read_history(&self, actor: &Actor) -> bool {
        self.is_managed_by(actor)
    }

    /// Whether `buyer` may order tickets to it: anyone but its organiser.
    pub fn may_order(&self, buyer: AccountId) -> bool {
        self.organizer != buyer
    }
}

/// What the rules about an order need to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderAccess {
    /// Who placed it.
    pub buyer: AccountId,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// When the hold lapses unless paid.
    pub expires_at: Timestamp,
}

impl OrderAccess {
    /// Its buyer or an admin: who may read it, follow it and cancel it.
    pub fn is_owned_by(&self, actor: &Actor) -> bool {
        self.buyer == actor.id || actor.is_admin
    }

    /// Whether the hold is still open: neither paid nor cancelled.
    pub fn is_open(&self) -> bool {
        matches!(self.status, OrderStatus::Created | OrderStatus::AwaitingPayment)
    }

    /// Whether `actor` may read and follow it.
    pub fn may_read(&self, actor: &Actor) -> bool {
        self.is_owned_by(actor)
    }

    /// Whether `actor` may cancel it now: its buyer or an admin, while the hold is open (also
    /// while a payment is under way: a charge that lands afterwards is refunded).
    pub fn may_cancel(&self, actor: &Actor) -> bool {
        self.is_owned_by(actor) && self.is_open()
    }

    /// Whether `actor` is the one who pays: only the buyer, never an admin on their behalf.
    pub fn is_paid_by(&self, actor: &Actor) -> bool {
        self.buyer == actor.id
    }

    /// Whether the hold has lapsed at `now`: from `expiresAt` on, it can no longer be paid and
    /// its expiry cancels it.
    pub fn has_lapsed(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    /// Whether `actor` may start a payment at `now`: the buyer, while the hold is open, unpaid,
    /// no payment is under way, and it has not lapsed.
    pub fn may_pay(&self, actor: &Actor, now: Timestamp) -> bool {
        self.is_paid_by(actor) && self.status == OrderStatus::Created && !self.has_lapsed(now)
    }
}

impl Actor {
    /// Whether this actor may read an account's personal data (its email address and roles):
    /// it is their own, or the actor is an admin.
    pub fn may_read_personal_data_of(&self, account: AccountId) -> bool {
        self.id == account || self.is_admin
    }
}

impl Ticket {
    /// The facts its authorization rules use.
    pub fn access(&self) -> TicketAccess {
        TicketAccess { seller: self.seller, status: self.status }
    }
}

impl Order {
    /// The facts its authorization rules use.
    pub fn access(&self) -> OrderAccess {
        OrderAccess { buyer: self.buyer, status: self.status, expires_at: self.expires_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{account, at};

    const SELLER: u128 = 1;
    const BUYER: u128 = 2;
    const OTHER: u128 = 3;
    const ADMIN: u128 = 9;

    fn ticket(status: TicketStatus) -> TicketAccess {
        TicketAccess { seller: account(SELLER), status }
    }

    fn order(status: OrderStatus) -> OrderAccess {
        OrderAccess { buyer: account(BUYER), status, expires_at: at(900) }
    }

    fn user(n: u128) -> Actor {
        Actor::user(account(n))
    }

    #[test]
    fn the_seller_and_admins_edit_available_tickets_only() {
        let available = ticket(TicketStatus::Available);
        assert!(available.may_edit(&user(SELLER)));
        assert!(available.may_edit(&Actor::admin(account(ADMIN))));
        assert!(!available.may_edit(&user(BUYER)));
        for status in [TicketStatus::Reserved, TicketStatus::Sold] {
            assert!(!ticket(status).may_edit(&user(SELLER)), "{status:?}");
            assert!(!ticket(status).may_edit(&Actor::admin(account(ADMIN))), "{status:?}");
            assert!(ticket(status).may_read_history(&user(SELLER)), "history stays readable when {status:?}");
        }
        assert!(!available.may_read_history(&user(BUYER)));
    }

    #[test]
    fn anyone_but_the_seller_holds_an_available_ticket() {
        assert!(ticket(TicketStatus::Available).may_hold(account(BUYER)));
        assert!(!ticket(TicketStatus::Available).may_hold(account(SELLER)));
        assert!(!ticket(TicketStatus::Reserved).may_hold(account(BUYER)));
        assert!(!ticket(TicketStatus::Sold).may_hold(account(BUYER)));
    }

    #[test]
    fn personal_data_is_for_its_owner_and_admins() {
        assert!(user(BUYER).may_read_personal_data_of(account(BUYER)));
        assert!(Actor::admin(account(ADMIN)).may_read_personal_data_of(account(BUYER)));
        assert!(!user(OTHER).may_read_personal_data_of(account(BUYER)));
    }

    #[test]
    fn the_buyer_and_admins_read_and_cancel_open_orders() {
        let admin = Actor::admin(account(ADMIN));
        for status in [OrderStatus::Created, OrderStatus::AwaitingPayment] {
            assert!(order(status).may_cancel(&user(BUYER)), "{status:?}");
            assert!(order(status).may_cancel(&admin), "{status:?}");
            assert!(!order(status).may_cancel(&user(SELLER)), "{status:?}");
        }
        for status in [OrderStatus::Complete, OrderStatus::Cancelled] {
            assert!(!order(status).may_cancel(&user(BUYER)), "{status:?}");
            assert!(order(status).may_read(&user(BUYER)), "{status:?}");
            assert!(order(status).may_read(&admin), "{status:?}");
        }
        assert!(!order(OrderStatus::Created).may_read(&user(OTHER)));
    }

    #[test]
    fn only_the_buyer_pays_a_held_order_before_it_lapses() {
        let created = order(OrderStatus::Created);
        assert!(created.may_pay(&user(BUYER), at(899)));
        assert!(!created.may_pay(&user(BUYER), at(900)), "the hold lapses at expiresAt");
        assert!(!created.may_pay(&Actor::admin(account(ADMIN)), at(0)));
        assert!(!created.may_pay(&user(SELLER), at(0)));
        for status in [OrderStatus::AwaitingPayment, OrderStatus::Complete, OrderStatus::Cancelled] {
            assert!(!order(status).may_pay(&user(BUYER), at(0)), "{status:?}");
        }
    }
}
