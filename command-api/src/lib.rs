//! The contracts between the platform's processes, and nothing else: what the gateway and the
//! command service say to each other over NATS ([`Request`], [`Reply`]), the roles an account
//! holds ([`Role`]), and what the projector tells readers when it commits ([`Notification`]).
//!
//! Both sides of each contract depend on this crate, so neither depends on the other: the gateway
//! pulls in no password hashing, payment client or projector code to speak to them.

mod command;
pub mod notification;
mod role;

pub use command::*;
pub use notification::Notification;
pub use role::{Role, known_roles, roles};
