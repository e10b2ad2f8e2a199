//! Accounts: registration, sessions, and the buyer's hold slots.
//!
//! Two aggregates live here:
//! - [`EmailClaim`] (subject `ticketing.email.<hex>`) reserves an address for one account id.
//!   Sign-up first claims the address (or learns which id already claimed it), then registers that
//!   account id. Both appends expect an empty subject, so of any number of simultaneous sign-ups
//!   with one address exactly one registers, and a sign-up interrupted between the two steps is
//!   completed by the next attempt instead of blocking the address forever.
//! - [`Account`] (subject `ticketing.account.<id>`) holds the profile, revoked sessions and the
//!   buyer's hold slots: every hold first claims a slot here, so the per-buyer limit is checked
//!   under the account's own optimistic lock, whatever the concurrency.

use std::collections::BTreeMap;
use std::convert::Infallible;

use crate::error::{ErrorCode, Refusal};
use crate::ids::{AccountId, OrderId, SessionId, ShowId, TicketId};
use crate::{Aggregate, Email, EmailError, Event, Timestamp};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in characters.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Checks a plain password against the policy before it is hashed at the edge.
///
/// # Errors
/// [`AccountError::PasswordLength`] outside 8..=128 characters.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) { Ok(()) } else { Err(AccountError::PasswordLength) }
}

/// The reservation of one email address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailClaim {
    /// The account that owns the address, once claimed.
    pub account_id: Option<AccountId>,
}

/// Commands on an [`EmailClaim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailClaimCommand {
    /// Reserve the address for `account_id`, unless it is reserved already.
    Claim {
        /// The normalized address.
        email: Email,
        /// The id a new account would get.
        account_id: AccountId,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
}

impl Aggregate for EmailClaim {
    type Command = EmailClaimCommand;
    type Error = Infallible;

    fn decide(&self, command: EmailClaimCommand) -> Result<Vec<Event>, Infallible> {
        let EmailClaimCommand::Claim { email, account_id, at } = command;
        Ok(match self.account_id {
            // Already claimed: the caller goes on with the claimed id.
            Some(_) => vec![],
            None => vec![Event::EmailClaimed { email, account_id, at }],
        })
    }

    fn evolve(mut self, event: &Event) -> Self {
        if let Event::EmailClaimed { account_id, .. } = event {
            self.account_id.get_or_insert(*account_id);
        }
        self
    }
}

/// A registered account's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The account id.
    pub id: AccountId,
    /// The normalized address.
    pub email: Email,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// When it registered.
    pub registered_at: Timestamp,
}

/// A hold slot in use: an order that counts against the buyer's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldSlot {
    /// The ticket the order holds (an order on a ticket).
    pub ticket_id: Option<TicketId>,
    /// The show the order is on (an order on a show).
    pub show_id: Option<ShowId>,
    /// When the hold lapses: its expiry fires then and releases the slot once the hold is closed
    /// (or was never placed). A retried hold with the same idempotency key keeps this time.
    pub expires_at: Timestamp,
}

/// A registered user: who they are, which sessions they signed out, and which holds count
/// against their `MAX_ACTIVE_HOLDS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// The profile, once registered.
    pub profile: Option<Profile>,
    /// Signed-out sessions, with the time their token expires anyway.
    pub revoked_sessions: BTreeMap<SessionId, Timestamp>,
    /// Hold slots in use, by order.
    pub hold_slots: BTreeMap<OrderId, HoldSlot>,
}

impl Account {
    /// Whether a session has been signed out.
    pub fn is_session_revoked(&self, session: SessionId) -> bool {
        self.revoked_sessions.contains_key(&session)
    }

    /// How many holds count against the limit: every slot not yet released. A slot keeps counting
    /// past its `expires_at` until its release is written (by the hold's expiry, cancellation or
    /// payment), so a late expiry never lets a buyer hold more than the limit.
    pub fn active_holds(&self) -> usize {
        self.hold_slots.len()
    }
}

/// Commands on an [`Account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Create the account.
    Register {
        /// Its id (from the email claim).
        account_id: AccountId,
        /// Its normalized address.
        email: Email,
        /// The argon2id hash of a password that passed [`check_password`].
        password_hash: String,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Sign a session out for good.
    RevokeSession {
        /// The token's `jti`.
        session_id: SessionId,
        /// When the token expires anyway.
        expires_at: Timestamp,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Take a hold slot for an order about to be placed.
    ClaimHoldSlot {
        /// The order.
        order_id: OrderId,
        /// The ticket it will hold (an order on a ticket).
        ticket_id: Option<TicketId>,
        /// The show it will be on (an order on a show).
        show_id: Option<ShowId>,
        /// When the hold would lapse.
        expires_at: Timestamp,
        /// The limit in force (`MAX_ACTIVE_HOLDS`).
        max_active: usize,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Give a hold slot back.
    ReleaseHoldSlot {
        /// The order.
        order_id: OrderId,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
}

/// Why an account command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The email address is not acceptable (`BAD_USER_INPUT`, field `email`).
    #[error(transparent)]
    InvalidEmail(#[from] EmailError),
    /// The password is not 8..=128 characters (`BAD_USER_INPUT`, field `password`).
    #[error("password must be 8 to 128 characters")]
    PasswordLength,
    /// The address belongs to another account (`CONFLICT`, field `email`).
    #[error("an account with this email already exists")]
    EmailTaken,
    /// No such account (`UNAUTHENTICATED`: the session names an account that does not exist).
    #[error("account not found")]
    NotFound,
    /// The order id already holds a slot for another ticket (`CONFLICT`); ids derived from
    /// idempotency keys include the ticket, so only a forged id gets here.
    #[error("this order id is already in use")]
    SlotInUse,
    /// The buyer already holds the maximum number of open orders (`CONFLICT`).
    #[error("you already hold {max} tickets; pay for or cancel one first")]
    HoldLimitReached {
        /// The limit in force.
        max: usize,
    },
}

impl Refusal for AccountError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidEmail(_) | Self::PasswordLength => ErrorCode::BadUserInput,
            Self::EmailTaken | Self::SlotInUse | Self::HoldLimitReached { .. } => ErrorCode::Conflict,
            Self::NotFound => ErrorCode::Unauthenticated,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidEmail(_) | Self::EmailTaken => Some("email"),
            Self::PasswordLength => Some("password"),
            Self::NotFound | Self::SlotInUse | Self::HoldLimitReached { .. } => None,
        }
    }
}

impl Aggregate for Account {
    type Command = AccountCommand;
    type Error = AccountError;

    fn decide(&self, command: AccountCommand) -> Result<Vec<Event>, AccountError> {
        match command {
            AccountCommand::Register { account_id, email, password_hash, at } => {
                if self.profile.is_some() {
                    return Err(AccountError::EmailTaken);
                }
                Ok(vec![Event::AccountRegistered { account_id, email, password_hash, at }])
            }
            AccountCommand::RevokeSession { session_id, expires_at, at } => {
                let profile = self.profile.as_ref().ok_or(AccountError::NotFound)?;
                if self.is_session_revoked(session_id) {
                    return Ok(vec![]);
                }
                Ok(vec![Event::SessionRevoked { account_id: profile.id, session_id, expires_at, at }])
            }
            AccountCommand::ClaimHoldSlot { order_id, ticket_id, show_id, expires_at, max_active, at } => {
                let profile = self.profile.as_ref().ok_or(AccountError::NotFound)?;
                if let Some(slot) = self.hold_slots.get(&order_id) {
                    // A retry of the same hold keeps its slot (and its expiry time); an order id
                    // can never stand for a hold on another ticket.
                    return if (slot.ticket_id, slot.show_id) == (ticket_id, show_id) {
                        Ok(vec![])
                    } else {
                        Err(AccountError::SlotInUse)
                    };
                }
                if self.active_holds() >= max_active {
                    return Err(AccountError::HoldLimitReached { max: max_active });
                }
                Ok(vec![Event::HoldSlotClaimed {
                    account_id: profile.id,
                    order_id,
                    ticket_id,
                    show_id,
                    expires_at,
                    at,
                }])
            }
            AccountCommand::ReleaseHoldSlot { order_id, at } => {
                let profile = self.profile.as_ref().ok_or(AccountError::NotFound)?;
                if !self.hold_slots.contains_key(&order_id) {
                    return Ok(vec![]);
                }
                Ok(vec![Event::HoldSlotReleased { account_id: profile.id, order_id, at }])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::AccountRegistered { account_id, email, password_hash, at } => {
                self.profile = Some(Profile {
                    id: *account_id,
                    email: email.clone(),
                    password_hash: password_hash.clone(),
                    registered_at: *at,
                });
            }
            Event::SessionRevoked { session_id, expires_at, .. } => {
                self.revoked_sessions.insert(*session_id, *expires_at);
            }
            Event::HoldSlotClaimed { order_id, ticket_id, show_id, expires_at, .. } => {
                let slot = HoldSlot { ticket_id: *ticket_id, show_id: *show_id, expires_at: *expires_at };
                self.hold_slots.insert(*order_id, slot);
            }
            Event::HoldSlotReleased { order_id, .. } => {
                self.hold_slots.remove(order_id);
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{account, at, given, order, ticket};

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    fn registered(id: u128) -> Event {
        Event::AccountRegistered {
            account_id: account(id),
            email: email("ada@example.com"),
            password_hash: "hash".into(),
            at: at(0),
        }
    }

    /// Account 1 took a slot for `order_n` on `ticket_n`, lapsing at `expires`.
    fn claimed(order_n: u128, ticket_n: u128, expires: i64) -> Event {
        Event::HoldSlotClaimed {
            account_id: account(1),
            order_id: order(order_n),
            ticket_id: Some(ticket(ticket_n)),
            show_id: None,
            expires_at: at(expires),
            at: at(0),
        }
    }

    fn claim(order_n: u128, expires: i64, now: i64) -> AccountCommand {
        AccountCommand::ClaimHoldSlot {
            order_id: order(order_n),
            ticket_id: Some(ticket(order_n)),
            show_id: None,
            expires_at: at(expires),
            max_active: 2,
            at: at(now),
        }
    }

    #[test]
    fn an_unclaimed_email_is_claimed_for_the_new_account() {
        given::<EmailClaim>([])
            .when(EmailClaimCommand::Claim { email: email("ada@example.com"), account_id: account(1), at: at(0) })
            .then([Event::EmailClaimed { email: email("ada@example.com"), account_id: account(1), at: at(0) }]);
    }

    #[test]
    fn a_claimed_email_keeps_its_first_account() {
        let state = given::<EmailClaim>([Event::EmailClaimed {
            email: email("ada@example.com"),
            account_id: account(1),
            at: at(0),
        }])
        .when(EmailClaimCommand::Claim { email: email("ada@example.com"), account_id: account(2), at: at(1) })
        .then([]);
        assert_eq!(state.account_id, Some(account(1)));
    }

    #[test]
    fn registering_a_new_account_stores_only_the_hash() {
        given::<Account>([])
            .when(AccountCommand::Register {
                account_id: account(1),
                email: email("ada@example.com"),
                password_hash: "hash".into(),
                at: at(0),
            })
            .then([registered(1)]);
    }

    #[test]
    fn registering_an_existing_account_is_an_email_conflict() {
        given::<Account>([registered(1)])
            .when(AccountCommand::Register {
                account_id: account(1),
                email: email("ada@example.com"),
                password_hash: "other".into(),
                at: at(1),
            })
            .then_err(AccountError::EmailTaken);
        assert_eq!(AccountError::EmailTaken.code(), ErrorCode::Conflict);
        assert_eq!(AccountError::EmailTaken.field(), Some("email"));
    }

    #[test]
    fn passwords_must_have_8_to_128_characters() {
        assert_eq!(check_password("1234567"), Err(AccountError::PasswordLength));
        assert_eq!(check_password("12345678"), Ok(()));
        assert_eq!(check_password(&"ü".repeat(128)), Ok(()));
        assert_eq!(check_password(&"x".repeat(129)), Err(AccountError::PasswordLength));
        assert_eq!(AccountError::PasswordLength.field(), Some("password"));
        assert_eq!(AccountError::PasswordLength.code(), ErrorCode::BadUserInput);
    }

    #[test]
    fn a_revoked_session_stays_revoked_and_revoking_again_changes_nothing() {
        let session = SessionId(uuid::Uuid::from_u128(9));
        let state = given::<Account>([registered(1)])
            .when(AccountCommand::RevokeSession { session_id: session, expires_at: at(100), at: at(1) })
            .then([Event::SessionRevoked {
                account_id: account(1),
                session_id: session,
                expires_at: at(100),
                at: at(1),
            }]);
        assert!(state.is_session_revoked(session));
        given::<Account>([
            registered(1),
            Event::SessionRevoked { account_id: account(1), session_id: session, expires_at: at(100), at: at(1) },
        ])
        .when(AccountCommand::RevokeSession { session_id: session, expires_at: at(100), at: at(2) })
        .then_nothing();
    }

    #[test]
    fn a_buyer_may_hold_up_to_the_limit() {
        given::<Account>([registered(1)]).when(claim(1, 900, 0)).then_ok();
        let (_, state) = given::<Account>([registered(1), claimed(1, 1, 900)]).when(claim(2, 900, 1)).then_ok();
        assert_eq!(state.active_holds(), 2);
    }

    #[test]
    fn a_buyer_at_the_hold_limit_is_refused_another_hold() {
        given::<Account>([registered(1), claimed(1, 1, 900), claimed(2, 2, 900)])
            .when(claim(3, 901, 1))
            .then_err(AccountError::HoldLimitReached { max: 2 });
    }

    #[test]
    fn released_slots_no_longer_count_against_the_limit() {
        let history = [
            registered(1),
            claimed(1, 1, 900),
            claimed(2, 2, 100),
            Event::HoldSlotReleased { account_id: account(1), order_id: order(1), at: at(5) },
        ];
        given::<Account>(history).when(claim(3, 905, 5)).then_ok();
    }

    #[test]
    fn a_lapsed_slot_counts_until_its_release_is_written() {
        // The expiry of order 2 is late (say, every command-service was down): its hold is still
        // open, so the buyer may not take another one past the limit.
        given::<Account>([registered(1), claimed(1, 1, 900), claimed(2, 2, 100)])
            .when(claim(3, 1000, 100))
            .then_err(AccountError::HoldLimitReached { max: 2 });
    }

    #[test]
    fn an_order_id_holding_a_slot_for_another_ticket_is_refused() {
        given::<Account>([registered(1), claimed(1, 1, 900)])
            .when(AccountCommand::ClaimHoldSlot {
                order_id: order(1),
                ticket_id: Some(ticket(2)),
                show_id: None,
                expires_at: at(901),
                max_active: 2,
                at: at(1),
            })
            .then_err(AccountError::SlotInUse);
    }

    #[test]
    fn claiming_the_same_order_twice_takes_one_slot() {
        given::<Account>([registered(1), claimed(1, 1, 900)]).when(claim(1, 900, 1)).then_nothing();
    }

    #[test]
    fn releasing_a_slot_that_is_not_held_changes_nothing() {
        given::<Account>([registered(1)])
            .when(AccountCommand::ReleaseHoldSlot { order_id: order(1), at: at(0) })
            .then_nothing();
    }

    #[test]
    fn an_unknown_account_cannot_hold_or_sign_out() {
        given::<Account>([]).when(claim(1, 900, 0)).then_err(AccountError::NotFound);
        given::<Account>([])
            .when(AccountCommand::RevokeSession {
                session_id: SessionId(uuid::Uuid::nil()),
                expires_at: at(1),
                at: at(0),
            })
            .then_err(AccountError::NotFound);
    }
}
